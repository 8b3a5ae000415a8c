"""The error vocabulary: what an error says, and what it never says (secrets)."""

from __future__ import annotations

import pytest

from daemon.cloud.errors import ApiError

IAM_TOKEN = "MIIEhgYJKoZIhvcNAQcCoIIEdzCCBHMCAQExDTALBglghkgBZQMEAgEwggLXBgkqhkiG9w0B" * 4


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ('{"user": {"name": "u", "password": "p4ss word!"}}', "p4ss word!"),
        ("X-Auth-Token: " + IAM_TOKEN, IAM_TOKEN[:20]),
        ("x-subject-token=" + IAM_TOKEN, IAM_TOKEN[:20]),
        ("access_key_id=HPUAXYZ1234567890ABC&SignedHeaders=host", "HPUAXYZ1234567890ABC"),
        ("echo: " + IAM_TOKEN + " end", IAM_TOKEN[:20]),
        ("sig 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978", "0f1e2d3c4b5a6978"),
        ("'security_token': 'abc-123'", "abc-123"),
    ],
)
def test_an_api_error_never_carries_what_looks_like_a_credential(text: str, gone: str) -> None:
    error = ApiError(f"refused: {text}", service="iam", operation="create_token", status=401)
    assert gone not in str(error)
    assert "[redacted]" in str(error)
