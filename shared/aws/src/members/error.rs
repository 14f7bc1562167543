//! Why a member account's role could not be assumed, in words that say what to check.

/// The member role of one account could not be assumed: that account's event fails alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot assume the member role {role_arn} in account {account}: {cause}; check that \
     member.yaml is deployed to account {account} (the StackSet's stack instance in the central \
     region creates the role), that its MemberRoleName is `{role_name}` as this stack's is, that \
     its CentralAccountId and CentralStackName name this stack (the role trusts only this \
     stack's layer function roles), and that no service control policy denies sts:AssumeRole \
     to this stack or on that role"
)]
pub struct MemberRoleError {
    /// The role asked for: `arn:<partition>:iam::<account>:role/<name>`.
    pub role_arn: String,
    /// The account whose event it was.
    pub account: String,
    /// The member role's name (this stack's MemberRoleName).
    pub role_name: String,
    /// What STS answered (its code and message), or what went wrong on the way.
    pub cause: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_role_the_account_the_answer_and_what_to_check() {
        let error = MemberRoleError {
            role_arn: "arn:aws:iam::222222222222:role/autoheal-member".to_owned(),
            account: "222222222222".to_owned(),
            role_name: "autoheal-member".to_owned(),
            cause: "AssumeRole: AccessDenied: not authorized".to_owned(),
        };
        let message = error.to_string();
        assert!(
            message.starts_with(
                "cannot assume the member role arn:aws:iam::222222222222:role/autoheal-member in \
                 account 222222222222: AssumeRole: AccessDenied: not authorized; check that \
                 member.yaml is deployed to account 222222222222"
            ),
            "{message}"
        );
        for what in [
            "MemberRoleName is `autoheal-member`",
            "CentralAccountId and CentralStackName",
            "service control policy",
        ] {
            assert!(message.contains(what), "{what}: {message}");
        }
        assert!(!message.contains('\n'), "{message}");
    }
}
