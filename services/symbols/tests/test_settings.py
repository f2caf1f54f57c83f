# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Each option is declared once: UploadSettings reads every upload option,
and its defaults are the options' defaults."""

import pytest

from tecken_shared.config import build_config_manager
from tecken_symbols.settings import CONFIG_COMPONENTS, UploadConfig
from tecken_symbols.upload.config import UploadSettings


def options(cls) -> set[str]:
    return {name for name in vars(cls.Config) if not name.startswith("_")}


def test_upload_settings_read_every_upload_option(tmp_path):
    from dataclasses import fields

    assert {f.metadata["option"] for f in fields(UploadSettings)} == options(UploadConfig)
    built = UploadSettings.from_config(build_config_manager({}, str(tmp_path / "none.env")))
    assert built == UploadSettings()


def test_options_parse_as_before(tmp_path):
    env = {
        "SYMBOLS_COMPRESS_EXTENSIONS": "sym, .PD_",
        "SYMBOLS_ALLOW_UPLOAD_BY_DOWNLOAD_DOMAINS": "Example.COM, ",
        "SYMBOLS_UPLOAD_DOWNLOAD_RETRIES": "2",
    }
    built = UploadSettings.from_config(build_config_manager(env, str(tmp_path / "none.env")))
    assert built.compress_extensions == ("sym", "pd_")
    assert built.allowed_domains == ("example.com",)
    assert built.download_retries == 2
    with pytest.raises(Exception, match="1-9"):
        UploadSettings.from_config(
            build_config_manager({"SYMBOLS_UPLOAD_GZIP_LEVEL": "10"}, str(tmp_path / "none.env"))
        )


def test_every_option_class_is_listed():
    names = [options(c) for c in CONFIG_COMPONENTS]
    assert all(names) and sum(len(n) for n in names) == len(set().union(*names))
