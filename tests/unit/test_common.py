from pydantic import BaseModel, SecretStr, ValidationError

from common.errors import ConfigError
from common.redaction import redact_text, redact_url
from common.settings_errors import config_error_from_validation


def test_redact_url_drops_signature_and_password() -> None:
    url = "https://user:hunter2@s3.amazonaws.com/b/file.csv?AWSAccessKeyId=AK&Signature=abc%2Fdef"
    red = redact_url(url)
    assert "hunter2" not in red and "Signature" not in red and "abc" not in red
    assert red.startswith("https://user@s3.amazonaws.com/b/file.csv")


def test_redact_text_finds_urls_in_messages() -> None:
    msg = "Client error '403 Forbidden' for url 'http://127.0.0.1:9/_s3/x.csv?Signature=SECRETSIG'"
    assert "SECRETSIG" not in redact_text(msg)


def test_validation_errors_name_env_vars_and_hide_input() -> None:
    class M(BaseModel):
        api_key: SecretStr
        port: int

    try:
        M.model_validate({"port": "not-a-number-SECRET"})
    except ValidationError as exc:
        err = config_error_from_validation(exc, env_prefix="ENCOURA_")
    text = str(err)
    assert "ENCOURA_API_KEY: is required but not set" in text
    assert "ENCOURA_PORT" in text
    assert "SECRET" not in text
    assert isinstance(err, ConfigError) and len(err.problems) == 2
