//! What a replacement volume is made as: the volume's own type, size, IOPS and throughput,
//! or the rule's target for a previous-generation volume; and its tags. Pure.

use std::collections::BTreeMap;

/// Where a replacement goes: `<instance id>:<device>` of the volume it replaces.
pub const ATTACH_TO_TAG: &str = "autoheal:attach-to";
/// The tag that finds an attempt's snapshot and replacement again when it is resumed.
pub const TOKEN_TAG: &str = "autoheal:token";
/// On a replacement: the volume it replaces.
pub const REPLACES_TAG: &str = "autoheal:replaces";
/// On a replaced volume: its replacement.
pub const REPLACED_BY_TAG: &str = "autoheal:replaced-by";
pub const INCIDENT_TAG: &str = "autoheal:incident";

/// What a replacement volume is made as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub volume_type: String,
    pub size: Option<i32>,
    pub iops: Option<i32>,
    pub throughput: Option<i32>,
}

impl Spec {
    pub fn describe(&self) -> String {
        let mut text = self.volume_type.clone();
        if let Some(iops) = self.iops {
            text.push_str(&format!(", {iops} IOPS"));
        }
        if let Some(throughput) = self.throughput {
            text.push_str(&format!(", {throughput} MiB/s"));
        }
        text
    }
}

/// The replacement keeps the volume's type, size, IOPS and throughput: they are what its
/// workload runs on and pays for. `target` (the rule's `target_volume_type`) applies only to
/// a previous-generation volume without provisioned performance (`gp2`, `standard`), which it
/// moves to `gp3`, `io1` or `io2` with at least the IOPS and throughput it had. Pure.
pub fn spec(
    volume_type: &str,
    size: Option<i32>,
    iops: Option<i32>,
    throughput: Option<i32>,
    target: &str,
) -> Spec {
    let keep = Spec {
        volume_type: volume_type.to_owned(),
        size,
        // gp2, st1, sc1 and standard derive their performance from their size.
        iops: iops.filter(|_| matches!(volume_type, "gp3" | "io1" | "io2")),
        throughput: throughput.filter(|_| volume_type == "gp3"),
    };
    let upgradable = matches!(volume_type, "gp2" | "standard");
    if !upgradable || !matches!(target, "gp3" | "io1" | "io2") || target == volume_type {
        return keep;
    }
    let gib = size.unwrap_or(1).max(1);
    // gp2: 3 IOPS per GiB, at least 100, at most 16,000; up to 250 MiB/s from 170 GiB.
    let gp2_iops = gib.saturating_mul(3).clamp(100, 16_000);
    let gp2_throughput = if gib > 170 { 250 } else { 128 };
    match target {
        "gp3" => Spec {
            volume_type: "gp3".to_owned(),
            size,
            iops: Some(gp2_iops.max(3000)),
            throughput: Some(gp2_throughput.max(125)),
        },
        _ => Spec {
            volume_type: target.to_owned(),
            size,
            iops: Some(gp2_iops),
            throughput: None,
        },
    }
}

/// The replacement's tags: the volume's own (each key once, never AWS's), then autoheal's,
/// which take the place of any the volume had as a replacement itself.
pub fn replacement_tags<'a>(
    own: impl IntoIterator<Item = (&'a str, &'a str)>,
    volume_id: &str,
    incident_id: &str,
    token: &str,
    attach_to: Option<&str>,
) -> Vec<(String, String)> {
    let ours = [
        REPLACES_TAG,
        INCIDENT_TAG,
        TOKEN_TAG,
        ATTACH_TO_TAG,
        REPLACED_BY_TAG,
    ];
    let mut tags: BTreeMap<String, String> = own
        .into_iter()
        .filter(|(key, _)| !key.starts_with("aws:") && !ours.contains(key))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    tags.insert(REPLACES_TAG.to_owned(), volume_id.to_owned());
    tags.insert(INCIDENT_TAG.to_owned(), incident_id.to_owned());
    tags.insert(TOKEN_TAG.to_owned(), token.to_owned());
    if let Some(attach_to) = attach_to {
        tags.insert(ATTACH_TO_TAG.to_owned(), attach_to.to_owned());
    }
    tags.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_keeps_the_type_iops_and_throughput_of_a_provisioned_volume() {
        let io2 = spec("io2", Some(100), Some(8000), None, "gp3");
        assert_eq!(
            (io2.volume_type.as_str(), io2.iops, io2.throughput),
            ("io2", Some(8000), None)
        );
        let gp3 = spec("gp3", Some(100), Some(6000), Some(500), "gp3");
        assert_eq!((gp3.iops, gp3.throughput), (Some(6000), Some(500)));
        let st1 = spec("st1", Some(500), None, None, "gp3");
        assert_eq!(st1.volume_type, "st1");
        assert_eq!(
            spec("io1", Some(10), Some(500), None, "io2").volume_type,
            "io1"
        );
    }

    #[test]
    fn a_gp2_volume_moves_to_the_target_with_at_least_its_performance() {
        let small = spec("gp2", Some(20), Some(100), None, "gp3");
        assert_eq!(
            (small.volume_type.as_str(), small.iops, small.throughput),
            ("gp3", Some(3000), Some(128))
        );
        let large = spec("gp2", Some(2000), Some(6000), None, "gp3");
        assert_eq!((large.iops, large.throughput), (Some(6000), Some(250)));
        let huge = spec("gp2", Some(16_000), Some(16_000), None, "gp3");
        assert_eq!(huge.iops, Some(16_000));
        let io2 = spec("gp2", Some(20), Some(100), None, "io2");
        assert_eq!(
            (io2.volume_type.as_str(), io2.iops, io2.throughput),
            ("io2", Some(100), None)
        );
        // A gp2 volume kept as gp2 (a rule naming gp2, or an unknown target) keeps no IOPS of its own.
        let kept = spec("gp2", Some(20), Some(100), None, "sc1");
        assert_eq!((kept.volume_type.as_str(), kept.iops), ("gp2", None));
    }

    #[test]
    fn a_replacement_of_a_replacement_carries_each_tag_once_and_points_at_its_own_original() {
        let own = [
            ("Name", "data"),
            ("team", "storage"),
            ("aws:cloudformation:stack-name", "app"),
            (REPLACES_TAG, "vol-first"),
            (INCIDENT_TAG, "incident-0"),
            (TOKEN_TAG, "autoheal-0"),
            (ATTACH_TO_TAG, "i-1:/dev/sdf"),
            (REPLACED_BY_TAG, "vol-other"),
        ];
        let tags = replacement_tags(
            own,
            "vol-second",
            "incident-1",
            "autoheal-1",
            Some("i-1:/dev/sdg"),
        );
        let keys: Vec<&str> = tags.iter().map(|(key, _)| key.as_str()).collect();
        let unique: std::collections::BTreeSet<&str> = keys.iter().copied().collect();
        assert_eq!(unique.len(), keys.len(), "each key once: {tags:?}");
        let map: BTreeMap<&str, &str> =
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            map,
            BTreeMap::from([
                ("Name", "data"),
                ("team", "storage"),
                (REPLACES_TAG, "vol-second"),
                (INCIDENT_TAG, "incident-1"),
                (TOKEN_TAG, "autoheal-1"),
                (ATTACH_TO_TAG, "i-1:/dev/sdg"),
            ])
        );
    }
}
