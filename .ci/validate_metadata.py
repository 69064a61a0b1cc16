#!/usr/bin/env python3
"""Validates an RFC 8414 authorization server metadata document with authlib.

Usage: validate_metadata.py METADATA.json [EXPECTED_ISSUER]

Runs authlib's AuthorizationServerMetadata(doc).validate() (every field RFC 8414
defines: https issuer without query or fragment, endpoint URLs, the *_supported
lists, ...), then the promises of this server's authorization-code flow:
`response_types_supported` contains "code", `code_challenge_methods_supported`
is exactly ["S256"] (no "plain"), and `authorization_response_iss_parameter_supported`
is true (RFC 9207). With EXPECTED_ISSUER, `issuer` must equal it (RFC 8414 §3.3).
Exits 1 with a message naming every failed check.
"""

import json
import sys

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[1]
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"metadata: cannot read JSON from {path}: {e}", file=sys.stderr)
        return 1
    if not isinstance(doc, dict):
        print(f"metadata: not a JSON object: {doc!r}", file=sys.stderr)
        return 1

    failures = []
    try:
        AuthorizationServerMetadata(doc).validate()
    except ValueError as e:
        failures.append(f"authlib (RFC 8414) rejects the document: {e}")

    if "code" not in (doc.get("response_types_supported") or []):
        failures.append(
            'response_types_supported must contain "code", got '
            f"{doc.get('response_types_supported')!r}"
        )
    if doc.get("code_challenge_methods_supported") != ["S256"]:
        failures.append(
            'code_challenge_methods_supported must be ["S256"], got '
            f"{doc.get('code_challenge_methods_supported')!r}"
        )
    if doc.get("authorization_response_iss_parameter_supported") is not True:
        failures.append(
            "authorization_response_iss_parameter_supported must be true, got "
            f"{doc.get('authorization_response_iss_parameter_supported')!r}"
        )
    if len(argv) == 3 and doc.get("issuer") != argv[2]:
        failures.append(f"issuer must be {argv[2]!r}, got {doc.get('issuer')!r}")

    if failures:
        print("RFC 8414 metadata check FAILED:", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        print(json.dumps(doc, indent=2, sort_keys=True), file=sys.stderr)
        return 1
    print(f"RFC 8414 metadata OK ({len(doc)} fields, issuer {doc['issuer']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
