"""Huawei Cloud over HTTP: errors, transport and retries, signing, the rate gate, GES and Cloud Eye."""
