"""The admin API (web/admin/) through a real uvicorn on a knowledge base of its own: the key's
401/403, uploads that become answerable, their limits and names, URL jobs behind the SSRF
guard, removal, reindex, the admin rate limit, and the feedback export. See SECURITY.md."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import httpx
import pytest

from web.admin.key import AdminKey
from web.admin.uploads import safe_name

KEY = "test-admin-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
FACT = "沈阳的市花是玫瑰。沈阳位于辽宁省中部，是辽宁省的省会城市。".encode()
FACT_QUESTION = "沈阳的市花是什么？"


@pytest.fixture(scope="module")
def admin_kb(make_settings, embedder):
    """A knowledge base of this module's own (the session's seed KB stays unchanged)."""
    from kbqa.knowledge_base import KnowledgeBase

    # No rate limits here (the many refusals below would spend them); tested on their own at the end.
    settings = make_settings(admin_key=KEY, rate_limit_per_minute=0, admin_rate_limit_per_minute=0)
    return KnowledgeBase(settings, embedder=embedder)


@pytest.fixture(scope="module")
def admin_url(admin_kb, start_app) -> str:
    return start_app(admin_kb)


def wait_for(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/jobs/{job_id}", headers=AUTH).json()
        if job["state"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def upload(client: httpx.Client, *files: tuple[str, bytes], headers=AUTH) -> httpx.Response:
    return client.post("/api/documents", files=[("files", (name, data)) for name, data in files], headers=headers)


# --------------------------------------------------------------------------- the key


ADMIN_CALLS = [
    ("POST", "/api/documents", {"json": {"url": "https://example.com/"}}),
    ("POST", "/api/documents", {"files": [("files", ("a.txt", b"x"))]}),
    ("DELETE", "/api/documents/000_d3d8b424e3677781.txt", {}),
    ("POST", "/api/reindex", {}),
    ("GET", "/api/jobs", {}),
    ("GET", "/api/jobs/abc", {}),
    ("GET", "/api/feedback.csv", {}),
]


def test_without_a_configured_key_every_admin_endpoint_is_403(seed_kb, start_app):
    before = seed_kb.stats()
    url = start_app(seed_kb, seed_kb.settings.model_copy(update={"rate_limit_per_minute": 0,
                                                                 "admin_rate_limit_per_minute": 0}))
    with httpx.Client(base_url=url, timeout=30) as client:
        for method, path, kwargs in ADMIN_CALLS:
            for headers in ({}, AUTH, {"Authorization": "Bearer x"}):
                response = client.request(method, path, headers=headers, **kwargs)
                assert response.status_code == 403, (method, path, headers, response.text)
                assert "KB_ADMIN_KEY" in response.json()["error"]
    assert seed_kb.stats() == before


def test_no_key_is_401_a_wrong_key_403_and_neither_is_echoed(admin_url):
    wrong = "Bearer wrong-key-with-a-marker-7c1e"
    with httpx.Client(base_url=admin_url, timeout=30) as client:
        for method, path, kwargs in ADMIN_CALLS:
            for headers in ({}, {"Authorization": KEY}, {"Authorization": "Basic " + KEY}, {"Authorization": "Bearer"}):
                response = client.request(method, path, headers=headers, **kwargs)
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert KEY not in response.text
            for value in (wrong, f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", "Bearer " + KEY.upper()):
                response = client.request(method, path, headers={"Authorization": value}, **kwargs)
                assert response.status_code == 403, (method, path, value, response.text)
                assert "7c1e" not in response.text and KEY not in response.text and "wrong" in response.json()["error"]
        # Reads stay public: the list of documents and the rest of the API need no key.
        assert client.get("/api/documents").status_code == 200


def test_the_key_check_is_constant_time_compare_and_reads_bearer_only(make_settings):
    key = AdminKey(make_settings(admin_key=KEY))
    assert key.status(f"Bearer {KEY}") == 0 and key.status(f"bearer  {KEY} ") == 0
    assert key.status(None) == 401 and key.status("") == 401 and key.status(KEY) == 401
    assert key.status("Bearer nope") == 403 and key.status("Bearer " + KEY + "\u00e9") == 403
    off = AdminKey(make_settings())
    assert not off.enabled and off.status(f"Bearer {KEY}") == 403


def test_the_key_setting_is_never_shown_and_must_be_long(make_settings):
    from kbcore.settings import settings_from_flags

    settings = make_settings(admin_key=KEY)
    assert KEY not in repr(settings) and KEY not in str(settings) and KEY not in settings.model_dump_json()
    assert make_settings(admin_key="").admin_key is None  # KB_ADMIN_KEY= is "off"
    with pytest.raises(ValueError) as info:
        settings_from_flags({"admin_key": "short-key-9f2"})
    assert "at least 16" in str(info.value) and "short-key-9f2" not in str(info.value)


# --------------------------------------------------------------------------- uploads


def test_an_upload_becomes_answerable_then_deleting_removes_it(admin_url, admin_kb):
    uploads = admin_kb.settings.store / "uploads"
    with httpx.Client(base_url=admin_url, timeout=60) as client:
        started = upload(client, ("沈阳 简介.txt", FACT))
        assert started.status_code == 202, started.text
        assert started.json()["documents"] == ["uploads/沈阳 简介.txt"]
        job = wait_for(client, started.json()["job_id"])
        assert job["state"] == "done" and job["added"] == ["uploads/沈阳 简介.txt"], job
        assert job["documents"] == {"done": 1, "total": 1} and job["failures"] == []
        answer = client.post("/api/ask", json={"question": FACT_QUESTION}).json()
        assert answer["found"] and "玫瑰" in answer["answer"]
        assert answer["citations"][0]["doc_id"] == "uploads/沈阳 简介.txt"
        assert "uploads/沈阳 简介.txt" in [d["doc_id"] for d in client.get("/api/documents").json()["documents"]]
        assert (uploads / "沈阳 简介.txt" / "uploads" / "沈阳 简介.txt").read_bytes() == FACT
        # The same name again is the same document: unchanged, not a second one.
        again = wait_for(client, upload(client, ("沈阳 简介.txt", FACT)).json()["job_id"])
        assert again["state"] == "done" and again["unchanged"] == ["uploads/沈阳 简介.txt"]
        assert client.get("/api/jobs", headers=AUTH).json()["jobs"][0]["job_id"] == again["job_id"]  # newest first

        removed = client.delete("/api/documents/uploads/沈阳 简介.txt", headers=AUTH)
        assert removed.status_code == 200 and removed.json() == {"removed": ["uploads/沈阳 简介.txt"]}
        assert not (uploads / "沈阳 简介.txt").exists()  # the file goes with its document
        assert not client.post("/api/ask", json={"question": FACT_QUESTION}).json()["found"]
        missing = client.delete("/api/documents/uploads/沈阳 简介.txt", headers=AUTH)
        assert missing.status_code == 404 and missing.json()["error"]
        assert client.get("/api/jobs/no-such-job", headers=AUTH).status_code == 404


def test_writes_go_to_the_knowledge_base_kb_names(admin_url, admin_kb):
    """?kb=NAME: an upload into a new name creates that knowledge base (its files kept apart:
    the same name uploaded to two knowledge bases is two files); removal and reindex of a name
    the store lacks are 404s, and a bad name is a 422 before anything is stored."""
    uploads = admin_kb.settings.store / "uploads"
    with httpx.Client(base_url=admin_url, timeout=60) as client:
        for kb in ("shenyang", "default"):
            started = client.post("/api/documents", params={"kb": kb}, files=[("files", ("沈阳.txt", FACT))], headers=AUTH)
            assert started.status_code == 202, started.text
            job = wait_for(client, started.json()["job_id"])
            assert job["kb"] == kb and job["state"] == "done" and job["added"] == ["uploads/沈阳.txt"], job
        assert (uploads / "_kb" / "shenyang" / "沈阳.txt" / "uploads" / "沈阳.txt").read_bytes() == FACT
        assert (uploads / "沈阳.txt" / "uploads" / "沈阳.txt").read_bytes() == FACT
        (listed,) = client.get("/api/documents", params={"kb": "shenyang"}).json()["documents"]
        assert listed["regions"] == ["辽宁省", "沈阳市"] and listed["ingested_at"] and listed["chunk_count"] == 1
        assert "shenyang" in [kb["name"] for kb in client.get("/api/kbs").json()["kbs"]]
        answer = client.post("/api/ask", json={"question": FACT_QUESTION, "kb": "shenyang"}).json()
        assert answer["found"] and answer["citations"][0]["doc_id"] == "uploads/沈阳.txt"

        reindexed = client.post("/api/reindex", params={"kb": "shenyang"}, headers=AUTH)
        assert wait_for(client, reindexed.json()["job_id"])["unchanged"] == ["uploads/沈阳.txt"]
        assert client.delete("/api/documents/uploads/沈阳.txt", params={"kb": "shenyang"}, headers=AUTH).status_code == 200
        assert not (uploads / "_kb" / "shenyang" / "沈阳.txt").exists()
        assert (uploads / "沈阳.txt").exists()  # the default knowledge base's copy stays
        assert client.get("/api/documents", params={"kb": "shenyang"}).json()["documents"] == []
        assert client.delete("/api/documents/uploads/沈阳.txt", headers=AUTH).status_code == 200

        assert client.post("/api/reindex", params={"kb": "nope"}, headers=AUTH).status_code == 404
        assert client.delete("/api/documents/x.txt", params={"kb": "nope"}, headers=AUTH).status_code == 404
        bad = client.post("/api/documents", params={"kb": "../x"}, files=[("files", ("a.txt", b"x"))], headers=AUTH)
        assert bad.status_code == 422 and not (uploads / "a.txt").exists()
        refused = client.post("/api/documents", params={"kb": "never"}, files=[("files", ("a.exe", b"x"))], headers=AUTH)
        assert refused.status_code == 422
        assert "never" not in [kb["name"] for kb in client.get("/api/kbs").json()["kbs"]]  # a refused write creates nothing


@pytest.mark.parametrize(
    "name, stored",
    [
        ("../../evil.txt", "evil.txt"),
        ("..\\..\\windows\\evil.txt", "evil.txt"),
        ("/etc/cron.d/evil.md", "evil.md"),
        ("....//....//x.txt", "x.txt"),
        (".hidden.txt", "hidden.txt"),
        ("a\nb\x00c\u202e.txt", "a_b_c_.txt"),
        ("报告 <script>.HTML", "报告 _script_.html"),
        ("~$lock.docx", "_lock.docx"),
        ("x" * 300 + ".pdf", "x" * 96 + ".pdf"),
        # By bytes too (ext4: 255): 84+ Chinese characters were a 500 "File name too long".
        ("数字经济" * 30 + ".txt", "数字经济" * 19 + "数字.txt"),  # 78 characters, 234 + 4 bytes
    ],
)
def test_safe_names_are_one_component_of_the_upload_folder(name, stored):
    assert safe_name(name) == stored


@pytest.mark.parametrize("name", ["evil.exe", "a.jsonl", "noext", ".txt", "../", "", None, "x.txt.sh"])
def test_names_of_other_types_or_none_are_refused(name):
    with pytest.raises(ValueError):
        safe_name(name)


def test_names_never_escape_the_upload_folder(admin_url, admin_kb, tmp_path_factory):
    uploads = (admin_kb.settings.store / "uploads").resolve()
    outside_before = {p for p in admin_kb.settings.store.parent.iterdir()}
    names = ["../../escape.txt", "..%2F..%2Fescape2.txt", "/tmp/escape3.txt", "sub/dir/escape4.md"]
    with httpx.Client(base_url=admin_url, timeout=60) as client:
        started = upload(client, *[(name, f"第{i}份文件的内容。".encode()) for i, name in enumerate(names)])
        assert started.status_code == 202, started.text
        ids = started.json()["documents"]
        assert ids == ["uploads/escape.txt", "uploads/_2F.._2Fescape2.txt", "uploads/escape3.txt", "uploads/escape4.md"]
        job = wait_for(client, started.json()["job_id"])
        assert job["state"] == "done" and sorted(job["added"]) == sorted(ids)
        for doc_id in ids:
            assert client.delete(f"/api/documents/{doc_id}", headers=AUTH).status_code == 200
    assert not Path("/tmp/escape3.txt").exists()
    assert {p for p in admin_kb.settings.store.parent.iterdir()} == outside_before
    for path in uploads.rglob("*"):
        assert uploads in path.resolve().parents


def test_upload_limits_and_bad_requests(admin_kb, start_app):
    small = start_app(admin_kb, admin_kb.settings.model_copy(update={"max_upload_bytes": 100_000, "max_upload_files": 3}))
    before = admin_kb.stats()["documents"]
    with httpx.Client(base_url=small, timeout=60) as client:
        # Over the upload limit: 413 in the API's error shape, with the key.
        big = upload(client, ("big.txt", "很长的文件。".encode() * 10_000))
        assert big.status_code == 413 and "100000" in big.json()["error"]
        # Without the key an upload gets the query endpoints' 64 KiB, decided before the body.
        anonymous = upload(client, ("a.txt", b"x" * 70_000), headers={})
        assert anonymous.status_code == 413 and "65536" in anonymous.json()["error"]
        assert upload(client, ("a.txt", b"x" * 100), headers={}).status_code == 401
        # Within both limits for the admin.
        mid = upload(client, ("mid.txt", "中等大小的文件。".encode() * 3000))  # ~72 kB
        assert mid.status_code == 202, mid.text
        cases = [
            (upload(client, *[(f"{i}.txt", b"x") for i in range(4)]), 422),  # too many files
            (upload(client, ("virus.exe", b"MZ")), 422),
            (upload(client, ("empty.txt", b"")), 422),
            (upload(client, ("a.txt", b"x"), ("a.txt", b"y")), 422),
            (client.post("/api/documents", files=[("other", ("a.txt", b"x"))], headers=AUTH), 422),
            (client.post("/api/documents", files={"files": (None, "not a file")}, headers=AUTH), 422),
            (client.post("/api/documents", data={"files": "x"}, headers=AUTH), 415),  # urlencoded
            (client.post("/api/documents", content=b"x", headers=AUTH | {"content-type": "text/plain"}), 415),
            (client.post("/api/documents", json={"url": "file:///etc/passwd"}, headers=AUTH), 422),
            (client.post("/api/documents", json={"url": "ftp://example.com/a"}, headers=AUTH), 422),
            (client.post("/api/documents", json={"url": "https://example.com", "path": "/etc"}, headers=AUTH), 422),
            (client.post("/api/documents", json={"url": 5}, headers=AUTH), 422),
            (client.post("/api/documents", content=b"{", headers=AUTH | {"content-type": "application/json"}), 422),
        ]
        for response, status in cases:
            assert response.status_code == status, (response.request.content[:80], response.text)
            assert response.json()["error"] and KEY not in response.text
        assert "virus.exe" not in {p.name for p in (admin_kb.settings.store / "uploads").rglob("*")}
        assert wait_for(client, mid.json()["job_id"])["added"] == ["uploads/mid.txt"]
        assert admin_kb.stats()["documents"] == before + 1
        assert client.delete("/api/documents/uploads/mid.txt", headers=AUTH).status_code == 200


def test_a_url_to_a_private_address_is_refused_by_the_ssrf_guard(admin_url, admin_kb):
    before = admin_kb.stats()["documents"]
    with httpx.Client(base_url=admin_url, timeout=60) as client:
        for url in ("http://127.0.0.1:9/x.html", "http://169.254.169.254/latest/meta-data/", "http://[::1]/"):
            started = client.post("/api/documents", json={"url": url}, headers=AUTH)
            assert started.status_code == 202, started.text
            job = wait_for(client, started.json()["job_id"])
            assert job["state"] == "failed" and job["added"] == [], job
            assert job["failures"][0]["source"] == url and "not a public address" in job["failures"][0]["reason"]
    assert admin_kb.stats()["documents"] == before


def test_a_failed_upload_is_not_kept_on_the_server(admin_url, admin_kb):
    with httpx.Client(base_url=admin_url, timeout=60) as client:
        started = upload(client, ("binary.txt", b"\x00\x01\x02\xff" * 100))
        job = wait_for(client, started.json()["job_id"])
        assert job["state"] == "failed" and job["failures"][0]["source"] == "uploads/binary.txt", job
    assert not (admin_kb.settings.store / "uploads" / "binary.txt").exists()


def test_reindex_ingests_every_document_again_from_its_source(admin_url, admin_kb):
    with httpx.Client(base_url=admin_url, timeout=60) as client:
        wait_for(client, upload(client, ("甲.md", "# 甲\n\n甲城的特产是苹果。".encode())).json()["job_id"])
        path = admin_kb.settings.store / "uploads" / "甲.md" / "uploads" / "甲.md"
        path.write_text("# 甲\n\n甲城的特产是梨子。", encoding="utf-8")  # the source changed on disk
        started = client.post("/api/reindex", headers=AUTH)
        assert started.status_code == 202
        job = wait_for(client, started.json()["job_id"])
        assert job["state"] == "done" and job["updated"] == ["uploads/甲.md"], job
        answer = client.post("/api/ask", json={"question": "甲城的特产是什么？"}).json()
        assert "梨子" in answer["answer"]
        assert client.delete("/api/documents/uploads/甲.md", headers=AUTH).status_code == 200


def test_admin_requests_without_the_key_have_a_small_rate_limit_of_their_own(admin_kb, start_app):
    url = start_app(admin_kb, admin_kb.settings.model_copy(update={
        "rate_limit_per_minute": 60, "rate_limit_burst": 20, "admin_rate_limit_per_minute": 6, "admin_rate_limit_burst": 3,
    }))
    with httpx.Client(base_url=url, timeout=30) as client:
        statuses = [client.get("/api/jobs", headers={"Authorization": f"Bearer guess{i:040d}"}).status_code
                    for i in range(4)]
        assert statuses == [403, 403, 403, 429]
        refused = client.delete("/api/documents/x", headers={})
        assert refused.status_code == 429 and refused.headers["retry-after"].isdigit()
        # The admin, with the key, is not slowed by the guesses (only by the general limit) ...
        assert [client.get("/api/jobs", headers=AUTH).status_code for _ in range(5)] == [200] * 5
        # ... and visitors' questions have their own buckets.
        assert client.post("/api/search", json={"query": "沈阳"}).status_code == 200


# --------------------------------------------------------------------------- feedback


def test_feedback_csv_is_admin_only_and_formulas_are_inert(admin_url, admin_kb):
    from web.feedback import FeedbackStore, feedback_path

    store = FeedbackStore(feedback_path(admin_kb.settings))
    store.add("=HYPERLINK(\"http://evil\")", "答案[1]", True)
    store.add("第二个问题", "-1+1", False)
    with httpx.Client(base_url=admin_url, timeout=30) as client:
        assert client.get("/api/feedback.csv").status_code == 401
        response = client.get("/api/feedback.csv", headers=AUTH)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(response.text.lstrip("\ufeff"))))
    assert rows[0] == ["time", "question", "answer", "vote"]
    assert rows[-2][1:] == ["'=HYPERLINK(\"http://evil\")", "答案[1]", "1"]
    assert rows[-1][1:] == ["第二个问题", "'-1+1", "-1"]
    assert all(len(row) == 4 for row in rows)


def test_an_upload_streamed_past_its_limit_is_cut_off_while_it_arrives(admin_kb, start_app):
    from tests.web.test_security import raw_exchange

    url = start_app(admin_kb, admin_kb.settings.model_copy(update={"max_upload_bytes": 100_000}))
    host = url.removeprefix("http://")
    head = (f"POST /api/documents HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    part = b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n\r\n'
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    start = time.monotonic()
    # 110 kB in 1 kB chunks and never the end: answered at the limit, not after a body that never ends.
    status, _, body = raw_exchange(url, head, [f"{len(part):x}\r\n".encode() + part + b"\r\n"] + [chunk] * 110)
    assert status == 413 and "100000" in body.decode()
    assert time.monotonic() - start < 4.5
    assert not (admin_kb.settings.store / "uploads" / "big.txt").exists()


def test_another_origin_cannot_send_the_key_or_delete(admin_kb, start_app):
    origin = "http://allowed.example"
    url = start_app(admin_kb, admin_kb.settings.model_copy(update={"allowed_origins": [origin]}))
    for method, headers in (("POST", "authorization"), ("DELETE", "content-type")):
        preflight = httpx.options(url + "/api/documents/x", headers={
            "Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers,
        }, timeout=30)
        assert preflight.status_code == 400  # Starlette's CORS refuses the method or the header
        assert "authorization" not in preflight.headers.get("access-control-allow-headers", "").lower()


def test_an_upload_never_replaces_a_document_of_another_source_under_its_id(admin_url, admin_kb, tmp_path):
    # A folder ingested by the operator holding uploads/同名.txt: the same id as an upload of 同名.txt.
    # The upload is kept beside it, under an id that says where it came from (issue 21).
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "同名.txt").write_text("操作员的文件内容。", encoding="utf-8")
    assert admin_kb.ingest([str(tmp_path)]).added == ["uploads/同名.txt"]
    with httpx.Client(base_url=admin_url, timeout=60) as client:
        job = wait_for(client, upload(client, ("同名.txt", "上传的另一份内容。".encode())).json()["job_id"])
        assert job["state"] == "done" and not job["failures"], job
        held = {d.doc_id: d.origin for d in admin_kb.documents()}
        assert held["uploads/同名.txt"] == str(tmp_path / "uploads" / "同名.txt")
        assert held["同名.txt:uploads/同名.txt"].startswith(str(admin_kb.settings.store / "uploads"))
        assert client.post("/api/search", json={"query": "操作员的文件内容"}).json()["passages"][0]["text"] == (
            "操作员的文件内容。")
        assert client.delete("/api/documents/uploads/同名.txt", headers=AUTH).status_code == 200
        assert client.delete("/api/documents/同名.txt:uploads/同名.txt", headers=AUTH).status_code == 200
    assert (tmp_path / "uploads" / "同名.txt").exists()  # and the operator's file is not the app's to delete


def test_an_upload_that_would_cost_too_much_is_refused_with_the_reason(make_settings, embedder, start_app):
    """The report: one uploaded PDF held the admin job queue for 6 min 15 s (18,960 chunks).
    The PDF's parse is killed at the time limit, the 94 MB-of-XML DOCX is refused at the
    character limit, a text of too many chunks at the chunk limit; each is a failure of the
    job with its reason, and the job ends within seconds."""
    from kbqa.knowledge_base import KnowledgeBase
    from tests.ingest.test_loaders import hostile_docx, hostile_pdf

    settings = make_settings(admin_key=KEY, rate_limit_per_minute=0, admin_rate_limit_per_minute=0,
                             parse_timeout_seconds=3, max_document_chunks=5)
    url = start_app(KnowledgeBase(settings, embedder=embedder))
    many_chunks = "".join(f"第{i}段讲锦州的数字政府建设，内容各不相同，编号{i}。" * 12 + "\n\n" for i in range(10))
    with httpx.Client(base_url=url, timeout=60) as client:
        t0 = time.monotonic()
        response = upload(client, ("drawn.pdf", hostile_pdf()), ("huge.docx", hostile_docx()),
                          ("long.txt", many_chunks.encode()), ("fine.txt", FACT))
        assert response.status_code == 202, response.text
        job = wait_for(client, response.json()["job_id"])
        assert time.monotonic() - t0 < 60
    assert job["state"] == "done" and job["added"] == ["uploads/fine.txt"], job
    reasons = {failure["source"]: failure["reason"] for failure in job["failures"]}
    assert "took over 3 s" in reasons["uploads/drawn.pdf"], reasons
    assert "KB_MAX_DOCUMENT_CHARS" in reasons["uploads/huge.docx"], reasons
    assert "chunks (limit 5: KB_MAX_DOCUMENT_CHUNKS)" in reasons["uploads/long.txt"], reasons


def test_an_upload_whose_chinese_name_is_over_255_bytes_is_stored_under_a_shorter_name(admin_url, admin_kb):
    name = "关于推进锦州市数字政府建设和云计算大数据产业发展若干政策措施的实施意见及配套细则的通知全文与解读说明材料" * 2 + ".txt"
    assert len(name.encode()) > 255
    with httpx.Client(base_url=admin_url, timeout=60) as client:
        response = upload(client, (name, FACT))
        assert response.status_code == 202, response.text
        [doc_id] = response.json()["documents"]
        assert len(doc_id.removeprefix("uploads/").encode()) <= 240 and name.startswith(doc_id.removeprefix("uploads/")[:-4])
        assert wait_for(client, response.json()["job_id"])["added"] == [doc_id]


def test_upload_folders_are_private(admin_url, admin_kb):
    """SECURITY.md promised mode 0700; the folders above the file were made 0755."""
    from web.admin.uploads import uploads_dir

    with httpx.Client(base_url=admin_url, timeout=60) as client:
        response = upload(client, ("private.txt", FACT))
        wait_for(client, response.json()["job_id"])
    root = uploads_dir(admin_kb.settings)
    for folder in (root, root / "private.txt", root / "private.txt" / "uploads"):
        assert folder.stat().st_mode & 0o777 == 0o700, (folder, oct(folder.stat().st_mode))
