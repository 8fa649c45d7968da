"""create --git: the origin URL the session gets never carries a credential."""

from __future__ import annotations

import pytest

from paude.gitseed import OriginURL, safe_origin


@pytest.mark.parametrize(("url", "expected"), [
    ("https://github.com/org/repo.git", OriginURL("https://github.com/org/repo.git")),
    ("git@github.com:org/repo.git", OriginURL("git@github.com:org/repo.git")),
    ("/srv/git/repo.git", OriginURL("/srv/git/repo.git")),
    ("https://user:ghp_secret@github.com/org/repo.git",
     OriginURL("https://github.com/org/repo.git", ("credentials",))),
    ("https://ghp_secret@github.com:8443/org/repo",
     OriginURL("https://github.com:8443/org/repo", ("credentials",))),
    ("ssh://git:pw@host.example/repo", OriginURL("ssh://host.example/repo", ("credentials",))),
    ("https://a:b@c@host.example/r", OriginURL("https://host.example/r", ("credentials",))),
    ("https://host.example/r?private_token=t0k",
     OriginURL("https://host.example/r", ("query",))),
])
def test_safe_origin(url: str, expected: OriginURL) -> None:
    got = safe_origin(url)
    assert got == expected
    for secret in ("ghp_secret", "pw", "t0k", "a:b"):
        if secret not in expected.url:
            assert secret not in got.url
