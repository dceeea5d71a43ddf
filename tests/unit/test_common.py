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


def test_a_hosts_limit_is_read_once_by_the_files_that_start_together(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Eight files starting at once ask one question of the Prefect server, not eight."""
    import threading
    import time

    from common import host_limits

    calls: list[str] = []

    def slow_read(name: str) -> bool:
        calls.append(name)
        time.sleep(0.2)  # a busy server: the other threads arrive while this one waits
        return False

    monkeypatch.setattr(host_limits, "_read_limit", slow_read)
    host_limits.reset_cache()
    answers: list[bool] = []
    threads = [
        threading.Thread(target=lambda: answers.append(host_limits.limit_exists("sftp:slate.example.edu")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    host_limits.reset_cache()
    assert calls == ["sftp:slate.example.edu"]
    assert answers == [False] * 8
