"""Starts the emulator (moto in server mode) with Systems Manager checking what SendCommand runs.

Systems Manager runs a command only with a document it has (`InvalidDocument` otherwise) and
only with the parameters that document declares, each one matching its `allowedPattern` or
one of its `allowedValues`, every parameter without a default given (`InvalidParameters`
otherwise, before anything is sent to an instance). moto 5.2.6 stores any command whatever
its document and parameters. This shim checks a SendCommand's document and parameters as
Systems Manager does, against the account's own documents (a document that moto does not
hold, such as `AWS-RunShellScript`, does not exist here) and otherwise lets moto send it;
nothing else changes.

Usage: moto_ssm_send_command_documents.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import json
import re
import sys
from typing import Any

import yaml
from moto.server import main
from moto.ssm.exceptions import InvalidDocument, SSMException
from moto.ssm.responses import SimpleSystemManagerResponse


class InvalidParameters(SSMException):
    def __init__(self, message: str):
        super().__init__("InvalidParameters", message)


def _declared(document: Any) -> dict[str, Any]:
    """The parameters a document declares."""
    text = document.content
    content = yaml.safe_load(text) if document.document_format == "YAML" else json.loads(text)
    return content.get("parameters") or {}


def _check(name: str, declared: dict[str, Any], given: dict[str, list[str]]) -> None:
    for parameter, values in given.items():
        if parameter not in declared:
            raise InvalidParameters(
                f"Parameter \"{parameter}\" is not defined in document \"{name}\"."
            )
        spec = declared[parameter]
        for value in values:
            allowed = spec.get("allowedValues")
            pattern = spec.get("allowedPattern")
            if allowed is not None and value not in allowed:
                raise InvalidParameters(
                    f"Parameter \"{parameter}\" \"{value}\" is not one of the allowed values "
                    f"{allowed}."
                )
            if pattern is not None and not re.search(pattern, value):
                raise InvalidParameters(
                    f"Parameter \"{parameter}\" \"{value}\" does not match the allowed "
                    f"pattern \"{pattern}\"."
                )
    missing = [p for p, spec in declared.items() if p not in given and "default" not in spec]
    if missing:
        raise InvalidParameters(f"Parameters {missing} are required by document \"{name}\".")


_send_command = SimpleSystemManagerResponse.send_command


def send_command(self: SimpleSystemManagerResponse) -> Any:
    name = self._get_param("DocumentName") or ""
    documents = self.ssm_backend._documents.get(name.split("/")[-1])
    if documents is None:
        raise InvalidDocument("The specified document does not exist.")
    version = self._get_param("DocumentVersion")
    document = documents.find(version if version not in (None, "$DEFAULT") else None)
    _check(name, _declared(document), self._get_param("Parameters", {}) or {})
    return _send_command(self)


SimpleSystemManagerResponse.send_command = send_command

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
