# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

import json
import os
import subprocess
import sys

from tecken_symbols import tokens
from tecken_symbols.cli import main
from tecken_symbols.db import Database


def run(capsys, url, *argv):
    code = main(["--database-url", url, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_admin_workflow(capsys, database_url):
    url = database_url
    assert run(capsys, url, "migrate", "--check")[0] == 1
    code, out, _ = run(capsys, url, "migrate")
    assert code == 0 and "applied 0001_initial" in out
    assert run(capsys, url, "migrate", "--check")[0] == 0

    assert run(capsys, url, "superuser", "root@example.com")[1].startswith("created superuser")
    assert run(capsys, url, "superuser", "root@example.com")[1].startswith("promoted superuser")
    code, out, err = run(capsys, url, "create-user", "up@example.com", "--group", "Uploaders")
    assert code == 0, err
    code, out, err = run(capsys, url, "create-user", "up@example.com")
    assert code == 1 and "already exists" in err

    # Default token: upload_symbols (the user has no view_all_uploads).
    code, out, err = run(capsys, url, "create-token", "up@example.com", "--notes", "ci")
    assert code == 0, err
    key = out.strip()
    assert len(key) == 32 and "\n" not in key
    db = Database(url)
    assert tokens.find_by_key(db, key).permissions == {"upload_symbols"}

    code, out, err = run(
        capsys, url, "create-token", "up@example.com", "--permission", "view_all_uploads"
    )
    assert code == 1 and "view_all_uploads not a valid permission" in err
    assert run(capsys, url, "grant", "up@example.com", "--permission", "view_all_uploads")[0] == 0
    code, out, err = run(
        capsys, url, "create-token", "up@example.com", "--try-upload", "--expires-days", "7"
    )
    try_key = out.strip()
    assert tokens.find_by_key(db, try_key).permissions == {"upload_try_symbols", "view_all_uploads"}

    code, out, _ = run(capsys, url, "list-tokens", "--email", "up@example.com", "--json")
    listed = json.loads(out)
    assert [t["key_prefix"] for t in listed] == [try_key[:8], key[:8]]
    assert key not in out

    code, out, _ = run(capsys, url, "list-users", "--json")
    users = {u["email"]: u for u in json.loads(out)}
    assert users["up@example.com"]["groups"] == ["Uploaders"]
    assert users["root@example.com"]["is_superuser"]

    assert run(capsys, url, "revoke-token", key[:8])[0] == 0
    assert tokens.find_by_key(db, key) is None
    assert run(capsys, url, "revoke-token", key[:8])[0] == 1
    assert run(capsys, url, "revoke-token", str(listed[0]["id"]))[0] == 0

    assert run(capsys, url, "revoke", "up@example.com", "--group", "Uploaders")[0] == 0
    assert run(capsys, url, "set-active", "up@example.com", "inactive")[0] == 0
    code, out, _ = run(capsys, url, "list-users")
    assert "INACTIVE" in out
    assert run(capsys, url, "grant", "up@example.com")[0] == 1
    assert run(capsys, url, "superuser", "not an email")[0] == 1
    db.close()


def test_console_script(tmp_path):
    env = {**os.environ, "SYMBOLS_DATABASE_URL": f"sqlite:///{tmp_path}/s.db"}
    script = os.path.join(os.path.dirname(sys.executable), "tecken-symbols-admin")
    subprocess.run([script, "superuser", "a@example.com"], env=env, check=True, capture_output=True)
    proc = subprocess.run(
        [script, "create-token", "a@example.com", "--permission", "upload_symbols"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert len(proc.stdout.strip()) == 32
