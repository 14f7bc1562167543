"""Prints a CloudFormation/SAM template as JSON, parsed with cfn-lint's own YAML decoder
(short-form intrinsics such as !Sub become their long form, e.g. {"Fn::Sub": ...}).

Usage: template_to_json.py TEMPLATE
"""

import json
import sys

from cfnlint.decode import cfn_yaml


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    template = cfn_yaml.load(sys.argv[1])
    json.dump(template, sys.stdout, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
