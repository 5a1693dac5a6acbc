"""The chat page's 管理 (Admin) tab, built only when an admin key is configured (web/chat/).

The page is public, so the tab holds no key and runs no Gradio event: it is one ``gr.HTML``
whose script talks to the JSON admin API (web/admin/) with the key the admin types, sent as
``Authorization: Bearer`` from this origin only. The key stays in the script's memory (not in
storage, not in Gradio's state or queue; a reload asks again). Files go up through a plain
``<input type=file>`` posting to ``POST /api/documents``: no Gradio file component, so
Gradio's upload route stays closed (web/gradio_guard.py). Every document title, id and job
message is put on the page with ``textContent``, never as HTML.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from web.admin.uploads import UPLOAD_TYPES
from web.i18n import ADMIN_TEXTS, text

# Wording by key: ``data-t`` (text), ``data-t-placeholder``, ``data-t-title``, ``data-t-label``
# (aria-label), filled in the page's language by the script (ADMIN_JS) and again on a switch.
ADMIN_HTML = f"""
<div class="kb-admin">
  <form class="kb-admin-login" autocomplete="off">
    <input type="password" name="key" data-t-placeholder="key" data-t-label="key" autocomplete="off">
    <button type="submit" class="kb-admin-btn" data-t="enter"></button>
    <span class="kb-admin-msg" role="status"></span>
  </form>
  <div class="kb-admin-panel" hidden>
    <form class="kb-admin-kb">
      <label><span data-t="kb"></span> <input type="text" name="kb" value="default" list="kb-admin-kbs"
        pattern="[A-Za-z0-9_\\-]{{1,40}}" data-t-label="kb" data-t-title="kb_rule"></label>
      <datalist id="kb-admin-kbs"></datalist>
      <button type="submit" class="kb-admin-btn" data-t="switch_kb"></button>
    </form>
    <div class="kb-admin-row">
      <form class="kb-admin-upload">
        <input type="file" name="files" multiple accept="{','.join(UPLOAD_TYPES)}" data-t-label="choose_files">
        <button type="submit" class="kb-admin-btn" data-t="upload"></button>
      </form>
      <form class="kb-admin-url">
        <input type="url" name="url" data-t-placeholder="url_placeholder" data-t-label="url">
        <button type="submit" class="kb-admin-btn" data-t="import_url"></button>
      </form>
    </div>
    <div class="kb-admin-row">
      <button type="button" class="kb-admin-btn kb-admin-reindex" data-t="reindex"></button>
      <button type="button" class="kb-admin-btn kb-admin-csv" data-t="csv"></button>
      <button type="button" class="kb-admin-btn kb-admin-logout" data-t="logout"></button>
    </div>
    <h4 data-t="jobs"></h4>
    <ul class="kb-admin-jobs"></ul>
    <h4 data-t="documents"></h4>
    <table class="kb-admin-docs">
      <thead><tr><th data-t="col_title"></th><th data-t="col_date"></th><th data-t="col_regions"></th>
        <th data-t="col_chunks"></th><th data-t="col_ingested"></th><th data-t="col_id"></th><th></th></tr></thead>
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
ADMIN_JS = (
    "const WORDS = " + json.dumps(ADMIN_TEXTS, ensure_ascii=False) + ";\n"
    + r"""
const $ = (sel) => element.querySelector(sel);
// The page's language: its 中文 / English switch (#kb-lang) names the other one (web/chat/).
const switchButton = document.querySelector("#kb-lang");
const lang = () => (switchButton && switchButton.textContent.trim() === "中文" ? "en" : "zh");
const t = (name, slots = {}) => WORDS[lang()][name].replace(/\{(\w+)\}/g, (_, slot) => String(slots[slot]));
const ATTRIBUTES = {tPlaceholder: "placeholder", tTitle: "title", tLabel: "aria-label"};
let shownIn = null;
const translate = () => {
  if (shownIn === lang()) return;
  shownIn = lang();
  for (const node of element.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  for (const [data, attribute] of Object.entries(ATTRIBUTES)) {
    for (const node of element.querySelectorAll("[data-" + data.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()) + "]")) {
      node.setAttribute(attribute, t(node.dataset[data]));
    }
  }
  for (const job of jobs.values()) showJob(job);  // the jobs' lines are wording too
};
let key = null;
let kb = "default";  // the knowledge base the panel works on (?kb= on every call)
const tracked = new Map();  // job id -> its list item
const jobs = new Map();  // job id -> its last state, to show again in another language
const inKb = (path) => path + (path.includes("?") ? "&" : "?") + "kb=" + encodeURIComponent(kb);
const say = (text) => { $(".kb-admin-msg").textContent = text; };
const call = async (path, options = {}) => {
  const headers = Object.assign({}, options.headers || {}, {Authorization: "Bearer " + key});
  const response = await fetch(path, Object.assign({}, options, {headers}));
  let body = null;
  try { body = response.headers.get("content-type").includes("json") ? await response.json() : null; } catch (e) {}
  return {status: response.status, body, response};
};
const when = (iso) => new Date(iso).toLocaleString(lang() === "en" ? "en-GB" : "zh-CN");
const cell = (row, text) => { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; };

async function loadKbs() {
  const response = await fetch("api/kbs");
  const list = $("#kb-admin-kbs");
  list.replaceChildren();
  for (const item of ((await response.json()).kbs || [])) {
    const option = document.createElement("option");
    option.value = item.name;
    option.textContent = t("kb_docs", {name: item.name, n: item.documents});
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
    cell(row, doc.regions.join(t("list_sep")) || "—");
    cell(row, String(doc.chunk_count));
    cell(row, doc.ingested_at ? when(doc.ingested_at) : "—");
    cell(row, doc.doc_id);
    const button = document.createElement("button");
    button.type = "button"; button.className = "kb-admin-btn kb-admin-delete"; button.textContent = t("delete");
    button.addEventListener("click", async () => {
      // One click removed a document for good: the admin says so twice.
      if (!confirm(t("confirm_delete", {title: doc.title || doc.doc_id, id: doc.doc_id}))) return;
      button.disabled = true;
      const {status, body} = await call(inKb("api/documents/" + encodeURIComponent(doc.doc_id)), {method: "DELETE"});
      say(status === 200 ? t("deleted", {id: doc.doc_id}) : t("delete_failed", {error: (body && body.error) || status}));
      loadDocuments();
    });
    cell(row, "").appendChild(button);
    body.appendChild(row);
  }
}

function showJob(job) {
  jobs.set(job.job_id, job);
  let item = tracked.get(job.job_id);
  if (!item) { item = document.createElement("li"); $(".kb-admin-jobs").prepend(item); tracked.set(job.job_id, item); }
  item.className = "kb-job kb-job-" + job.state + (job.state === "failed" ? " kb-failed" : "");
  const known = (prefix, value) => (WORDS.zh[prefix + value] ? t(prefix + value) : value);
  // When it was submitted (and finished): two uploads of one file are two lines, not a duplicate.
  let text = t("job_submitted", {time: when(job.created_at)});
  if (job.finished_at) text += " · " + t("job_finished", {time: when(job.finished_at)});
  text += " · " + job.kb + " · " + known("kind_", job.kind) + " · " + known("state_", job.state) +
          " · " + t("job_docs", job.documents);
  if (job.added.length) text += " · " + t("job_added", {ids: job.added.join(t("list_sep"))});
  if (job.updated.length) text += " · " + t("job_updated", {ids: job.updated.join(t("list_sep"))});
  for (const failure of job.failures) text += " · " + t("job_failed", failure);
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
  if (status !== 202) { say(t("not_started", {error: (body && body.error) || status})); return; }
  say(t("started", {id: body.job_id}));
  follow(body.job_id);
}

$(".kb-admin-login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = event.target.elements.key;
  key = input.value;
  const {status, body} = await call("api/jobs");
  if (status !== 200) {
    key = null;
    say(t(status === 429 ? "too_many" : "wrong_key"));
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
  if (!input.checkValidity()) { say(t("bad_kb")); return; }
  kb = input.value;
  say("");
  loadDocuments();
});

$(".kb-admin-upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = event.target.elements.files;
  if (!input.files.length) { say(t("no_files")); return; }
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
  if (status !== 200) { say(t("download_failed", {error: status})); return; }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = "feedback.csv";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
});

$(".kb-admin-logout").addEventListener("click", () => {
  key = null;
  tracked.clear();
  jobs.clear();
  $(".kb-admin-jobs").replaceChildren();
  $(".kb-admin-docs tbody").replaceChildren();
  $(".kb-admin-panel").hidden = true;
  $(".kb-admin-login").hidden = false;
});

translate();
if (switchButton) new MutationObserver(translate).observe(switchButton, {childList: true, characterData: true, subtree: true});
"""
)


def admin_tab() -> tuple[Any, Any]:
    """The 管理 tab, inside the page's ``gr.Blocks`` (see the module docstring): the tab and its
    intro, for the page's wording (web/chat/); the panel follows the language by itself. Built
    hidden: the page shows it on the admin's address (``/?admin``), not to every visitor."""
    with gr.Tab(text("zh", "tab_admin"), id="kb-tab-admin", visible=False) as tab:
        intro = gr.Markdown(text("zh", "admin_intro"))
        gr.HTML(ADMIN_HTML, elem_id="kb-admin", css_template=ADMIN_CSS, js_on_load=ADMIN_JS)
    return tab, intro
