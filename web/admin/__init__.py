"""Administration over HTTP: ``web.admin.routes.admin_router`` (see SECURITY.md "Administration").

    POST   /api/documents?kb=NAME    multipart ``files`` (one or more), or JSON {"url": ...} -> 202 {"job_id"}
    GET    /api/jobs/{job_id}        {"state": queued|running|done|failed, "documents": {"done", "total"}, ...}
    GET    /api/jobs                 the recent jobs, newest first
    DELETE /api/documents/{doc_id}?kb=NAME   200 {"removed": [doc_id]}; 404 when the store holds no such document
    POST   /api/reindex?kb=NAME      202 {"job_id"}: every document ingested again from its source
    GET    /api/feedback.csv         the chat's 👍/👎 votes (web/feedback.py)

``kb`` is ``default`` when not given; an upload or URL into a name the store lacks creates that
knowledge base, a removal or reindex of one is a 404.

Every one needs ``Authorization: Bearer <settings.admin_key>`` (401 without, 403 with another
key); with no key configured they are all 403. Writes go through the facade
(``KnowledgeBase.ingest`` / ``remove`` / ``refresh``), one job at a time on a worker thread,
in the order they came.

Uploads are kept under ``settings.uploads_dir`` (default ``<store>/uploads``; another knowledge
base's under ``<uploads>/_kb/<kb name>``), one folder per file name:
``<uploads>/<name>/uploads/<name>``, ingested as the folder ``<uploads>/<name>``, so
the document id is ``uploads/<name>`` (readable, in its own namespace, the same for the same
name uploaded again, and ``source_inputs`` finds its folder again for a refresh). Names are
sanitized to one path component before anything touches the disk.

One idea a file: ``key`` (the admin key, its refusals, the larger upload body it allows),
``uploads`` (an upload's name and where it is kept), ``jobs`` (the background writes and their
progress), ``models`` (the request and response shapes), ``routes`` (the endpoints). Nothing is
imported here.
"""
