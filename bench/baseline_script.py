"""The way the scripts we replace work (seeds/000: "Encoura API File Downloader & SFTP Uploader").

requests + paramiko, strictly sequential: log in, list NotDelivered exports, download every file
into a local folder, then open one SFTP connection and upload the files one after the other,
deleting each local copy after its upload. No temp names, no verification, no ledger: the point is
a fair speed reference, not a behaviour to copy. Host keys are checked (known_hosts, RejectPolicy)
so the comparison does not flatter the baseline with a cheaper handshake.

Environment: ENCOURA_BASE_URL, ENCOURA_API_KEY, ENCOURA_USERNAME, ENCOURA_PASSWORD,
ENCOURA_ORGANIZATION_UID, ENCOURA_PRODUCT_KEYS (comma separated), BASELINE_SFTP_HOST,
BASELINE_SFTP_PORT, BASELINE_SFTP_USER, BASELINE_SFTP_KEY, BASELINE_KNOWN_HOSTS,
BASELINE_REMOTE_DIR, BASELINE_DOWNLOAD_DIR. Prints one JSON line with its timings.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import paramiko
import requests


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._ -]", "_", name).strip() or "export.csv"


def download_all(session: requests.Session, base: str, download_dir: Path) -> list[Path]:
    headers = {"x-api-key": os.environ["ENCOURA_API_KEY"]}
    login = session.post(
        f"{base}/login",
        json={
            "userName": os.environ["ENCOURA_USERNAME"],
            "password": os.environ["ENCOURA_PASSWORD"],
            "acceptedTerms": True,
        },
        headers=headers,
        timeout=60,
    )
    login.raise_for_status()
    token = login.json()["sessionToken"].strip('"')
    headers |= {"Authorization": f"Bearer {token}", "Organization": os.environ["ENCOURA_ORGANIZATION_UID"]}
    files: list[Path] = []
    for key in os.environ.get("ENCOURA_PRODUCT_KEYS", "prospect").split(","):
        listing = session.get(
            f"{base}/datacenter/exports",
            params={"status": "NotDelivered", "productKey": key},
            headers=headers,
            timeout=60,
        )
        listing.raise_for_status()
        for export in listing.json():
            url = session.get(f"{base}/datacenter/exports/{export['uid']}/download", headers=headers, timeout=60)
            url.raise_for_status()
            download_url = url.json()["downloadUrl"]
            target = download_dir / _sanitize(unquote(Path(urlparse(download_url).path).name))
            with requests.get(download_url, stream=True, timeout=60) as response:
                response.raise_for_status()
                with open(target, "wb") as fh:
                    for chunk in response.iter_content(chunk_size=1024 * 1024):
                        fh.write(chunk)
            files.append(target)
    return files


def upload_all(files: list[Path]) -> None:
    client = paramiko.SSHClient()
    client.load_host_keys(os.environ["BASELINE_KNOWN_HOSTS"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        os.environ["BASELINE_SFTP_HOST"],
        port=int(os.environ["BASELINE_SFTP_PORT"]),
        username=os.environ["BASELINE_SFTP_USER"],
        key_filename=os.environ["BASELINE_SFTP_KEY"],
        look_for_keys=False,
        allow_agent=False,
    )
    try:
        sftp = client.open_sftp()
        remote_dir = os.environ["BASELINE_REMOTE_DIR"]
        try:
            sftp.stat(remote_dir)
        except FileNotFoundError:
            sftp.mkdir(remote_dir)
        for path in files:
            sftp.put(str(path), f"{remote_dir}/{path.name}")
            path.unlink()
        sftp.close()
    finally:
        client.close()


def main() -> None:
    base = os.environ["ENCOURA_BASE_URL"].rstrip("/")
    download_dir = Path(os.environ["BASELINE_DOWNLOAD_DIR"])
    download_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with requests.Session() as session:
        files = download_all(session, base, download_dir)
    downloaded = time.monotonic()
    upload_all(files)
    finished = time.monotonic()
    print(
        json.dumps(
            {
                "files": len(files),
                "download_seconds": round(downloaded - started, 3),
                "upload_seconds": round(finished - downloaded, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
