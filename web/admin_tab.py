"""The chat page's 管理 tab, built only when an admin key is configured (web/chat.py).

The page is public, so the tab holds no key and runs no Gradio event: it is one ``gr.HTML``
whose script talks to the JSON admin API (web/admin.py) with the key the admin types, sent as
``Authorization: Bearer`` from this origin only. The key stays in the script's memory (not in
storage, not in Gradio's state or queue; a reload asks again). Files go up through a plain
``<input type=file>`` posting to ``POST /api/documents``: no Gradio file component, so
Gradio's upload route stays closed (web/gradio_guard.py). Every document title, id and job
message is put on the page with ``textContent``, never as HTML.
"""

from __future__ import annotations

import gradio as gr

from web.admin import UPLOAD_TYPES

ADMIN_HTML = f"""
<div class="kb-admin">
  <form class="kb-admin-login" autocomplete="off">
    <input type="password" name="key" placeholder="管理密钥（KB_ADMIN_KEY）" autocomplete="off" aria-label="管理密钥">
    <button type="submit" class="kb-admin-btn">进入管理</button>
    <span class="kb-admin-msg" role="status"></span>
  </form>
  <div class="kb-admin-panel" hidden>
    <form class="kb-admin-kb">
      <label>知识库 <input type="text" name="kb" value="default" list="kb-admin-kbs" pattern="[A-Za-z0-9_\\-]{{1,40}}"
        aria-label="知识库" title="字母、数字、_ 或 -；上传到新名称即新建知识库"></label>
      <datalist id="kb-admin-kbs"></datalist>
      <button type="submit" class="kb-admin-btn">切换</button>
    </form>
    <div class="kb-admin-row">
      <form class="kb-admin-upload">
        <input type="file" name="files" multiple accept="{','.join(UPLOAD_TYPES)}" aria-label="选择文件">
        <button type="submit" class="kb-admin-btn">上传并导入</button>
      </form>
      <form class="kb-admin-url">
        <input type="url" name="url" placeholder="https://…（导入网页）" aria-label="网址">
        <button type="submit" class="kb-admin-btn">导入网址</button>
      </form>
    </div>
    <div class="kb-admin-row">
      <button type="button" class="kb-admin-btn kb-admin-reindex">从来源重新索引</button>
      <button type="button" class="kb-admin-btn kb-admin-csv">下载反馈（CSV）</button>
      <button type="button" class="kb-admin-btn kb-admin-logout">退出</button>
    </div>
    <h4>任务</h4>
    <ul class="kb-admin-jobs"></ul>
    <h4>文档</h4>
    <table class="kb-admin-docs">
      <thead><tr><th>标题</th><th>日期</th><th>地区</th><th>片段</th><th>导入时间</th><th>ID</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
  </div>
</div>
"""

ADMIN_CSS = """
.kb-admin [hidden] { display: none !important; }
.kb-admin form { display: flex; gap: 0.5rem; align-items: center; flex-wrap: wrap; margin: 0 0 0.6rem; }
.kb-admin input[type=text] { padding: 0.3rem 0.5rem; border: 1px solid var(--border-color-primary); border-radius: 6px; }
.kb-admin input[type=password], .kb-admin input[type=url] { flex: 1; min-width: 14rem; padding: 0.4rem 0.6rem;
  border: 1px solid var(--border-color-primary); border-radius: 6px; background: var(--input-background-fill); }
.kb-admin-row { display: flex; gap: 1rem; flex-wrap: wrap; margin-bottom: 0.6rem; }
.kb-admin-btn { padding: 0.35rem 0.9rem; border-radius: 6px; border: 1px solid var(--border-color-primary);
  background: var(--button-secondary-background-fill); cursor: pointer; }
.kb-admin-msg { color: var(--body-text-color-subdued); }
.kb-admin-docs { width: 100%; border-collapse: collapse; font-size: 0.9rem; }
.kb-admin-docs th, .kb-admin-docs td { text-align: left; padding: 0.3rem 0.5rem;
  border-bottom: 1px solid var(--border-color-primary); }
.kb-admin-jobs { padding-left: 1.2rem; font-size: 0.9rem; }
.kb-admin-jobs .kb-failed { color: var(--error-text-color, #b91c1c); }
"""

# Runs once when the tab's HTML is on the page (Gradio's js_on_load: ``element`` is the component).
ADMIN_JS = r"""
const $ = (sel) => element.querySelector(sel);
let key = null;
let kb = "default";  // the knowledge base the panel works on (?kb= on every call)
const tracked = new Map();  // job id -> its list item
const inKb = (path) => path + (path.includes("?") ? "&" : "?") + "kb=" + encodeURIComponent(kb);
const say = (text) => { $(".kb-admin-msg").textContent = text; };
const call = async (path, options = {}) => {
  const headers = Object.assign({}, options.headers || {}, {Authorization: "Bearer " + key});
  const response = await fetch(path, Object.assign({}, options, {headers}));
  let body = null;
  try { body = response.headers.get("content-type").includes("json") ? await response.json() : null; } catch (e) {}
  return {status: response.status, body, response};
};
const cell = (row, text) => { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; };
const KINDS = {upload: "上传", url: "网址", reindex: "重新索引"};
const STATES = {queued: "排队中", running: "进行中", done: "完成", failed: "失败"};

async function loadKbs() {
  const response = await fetch("api/kbs");
  const list = $("#kb-admin-kbs");
  list.replaceChildren();
  for (const item of ((await response.json()).kbs || [])) {
    const option = document.createElement("option");
    option.value = item.name;
    option.textContent = item.name + "（" + item.documents + " 个文档）";
    list.appendChild(option);
  }
}

async function loadDocuments() {
  const response = await fetch(inKb("api/documents"));
  const docs = response.ok ? (await response.json()).documents || [] : [];  // a new name: nothing yet
  const body = $(".kb-admin-docs tbody");
  body.replaceChildren();
  for (const doc of docs) {
    const row = document.createElement("tr");
    row.dataset.docId = doc.doc_id;
    cell(row, doc.title || doc.doc_id);
    cell(row, doc.date || "—");
    cell(row, doc.regions.join("、") || "—");
    cell(row, String(doc.chunk_count));
    cell(row, doc.ingested_at ? new Date(doc.ingested_at).toLocaleString() : "—");
    cell(row, doc.doc_id);
    const button = document.createElement("button");
    button.type = "button"; button.className = "kb-admin-btn kb-admin-delete"; button.textContent = "删除";
    button.addEventListener("click", async () => {
      button.disabled = true;
      const {status, body} = await call(inKb("api/documents/" + encodeURIComponent(doc.doc_id)), {method: "DELETE"});
      say(status === 200 ? "已删除：" + doc.doc_id : "删除失败：" + ((body && body.error) || status));
      loadDocuments();
    });
    cell(row, "").appendChild(button);
    body.appendChild(row);
  }
}

function showJob(job) {
  let item = tracked.get(job.job_id);
  if (!item) { item = document.createElement("li"); $(".kb-admin-jobs").prepend(item); tracked.set(job.job_id, item); }
  item.className = "kb-job kb-job-" + job.state + (job.state === "failed" ? " kb-failed" : "");
  let text = job.kb + " · " + (KINDS[job.kind] || job.kind) + " · " + (STATES[job.state] || job.state) +
             " · " + job.documents.done + "/" + job.documents.total + " 个文档";
  if (job.added.length) text += " · 新增 " + job.added.join("、");
  if (job.updated.length) text += " · 更新 " + job.updated.join("、");
  for (const failure of job.failures) text += " · 失败 " + failure.source + "：" + failure.reason;
  if (job.error) text += " · " + job.error;
  item.textContent = text;
}

async function follow(jobId) {
  while (key) {
    const {status, body, response} = await call("api/jobs/" + encodeURIComponent(jobId));
    if (status === 200) {
      showJob(body);
      if (body.state === "done" || body.state === "failed") { loadDocuments(); loadKbs(); return; }
    } else if (status !== 429) { return; }
    const wait = status === 429 ? 1000 * Number(response.headers.get("retry-after") || 2) : 1000;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

async function started({status, body}) {
  if (status !== 202) { say("未能开始：" + ((body && body.error) || status)); return; }
  say("已开始任务 " + body.job_id);
  follow(body.job_id);
}

$(".kb-admin-login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = event.target.elements.key;
  key = input.value;
  const {status, body} = await call("api/jobs");
  if (status !== 200) {
    key = null;
    say(status === 429 ? "尝试过于频繁，请稍后再试" : "密钥不正确");
    return;
  }
  input.value = "";
  say("");
  event.target.hidden = true;
  $(".kb-admin-panel").hidden = false;
  for (const job of body.jobs.slice().reverse()) showJob(job);
  loadKbs();
  loadDocuments();
});

$(".kb-admin-kb").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = event.target.elements.kb;
  if (!input.checkValidity()) { say("知识库名称只能包含字母、数字、_ 或 -"); return; }
  kb = input.value;
  say("");
  loadDocuments();
});

$(".kb-admin-upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = event.target.elements.files;
  if (!input.files.length) { say("请先选择文件"); return; }
  const form = new FormData();
  for (const file of input.files) form.append("files", file, file.name);
  await started(await call(inKb("api/documents"), {method: "POST", body: form}));
  input.value = "";
});

$(".kb-admin-url").addEventListener("submit", async (event) => {
  event.preventDefault();
  const url = event.target.elements.url.value.trim();
  if (!url) return;
  await started(await call(inKb("api/documents"), {method: "POST", headers: {"Content-Type": "application/json"},
                                                   body: JSON.stringify({url})}));
});

$(".kb-admin-reindex").addEventListener("click", async () => started(await call(inKb("api/reindex"), {method: "POST"})));

$(".kb-admin-csv").addEventListener("click", async () => {
  const {status, response} = await call("api/feedback.csv");
  if (status !== 200) { say("下载失败：" + status); return; }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = "feedback.csv";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
});

$(".kb-admin-logout").addEventListener("click", () => {
  key = null;
  tracked.clear();
  $(".kb-admin-jobs").replaceChildren();
  $(".kb-admin-docs tbody").replaceChildren();
  $(".kb-admin-panel").hidden = true;
  $(".kb-admin-login").hidden = false;
});
"""


def admin_tab() -> None:
    """The 管理 tab, inside the page's ``gr.Blocks`` (see the module docstring)."""
    with gr.Tab("管理", id="kb-tab-admin"):
        gr.Markdown(
            "## 管理\n输入管理密钥后，可选择知识库，上传文档（.txt .md .html .pdf .docx）、导入网址、删除文档、"
            "从来源重新索引，并查看导入进度；上传到新的知识库名称即新建知识库。密钥只保存在本页内存中，刷新页面后需重新输入。"
        )
        gr.HTML(ADMIN_HTML, elem_id="kb-admin", css_template=ADMIN_CSS, js_on_load=ADMIN_JS)
