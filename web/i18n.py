"""Every piece of wording the chat page shows, per language: Chinese (the default) and
English, switched by the page's 中文 / English button (web/chat/).

Answers are not here: their text, refusals included, follows the question's language
(kbqa/answering.py). Gradio's own controls (the chat's copy and trash buttons) follow the
browser's language.
"""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]
LANGUAGES: tuple[Lang, ...] = ("zh", "en")

TEXTS: dict[Lang, dict[str, str]] = {
    "zh": {
        "switch": "English",  # the button offers the other language
        "tab_chat": "问答",
        "intro": "# 知识库问答\n根据知识库中的文档回答问题；答案的每一句都标注了来源，"
        "点击 [n] 查看引用原文（宽屏在右侧，手机在下方）。",
        "question_label": "问题",
        "question_placeholder": "输入问题，按回车发送",
        "examples_label": "示例问题（点击即问）",
        "chat_label": "对话",
        "chat_placeholder": "请在下方输入问题，或点击上方的示例问题。",
        "send": "发送",
        "sources_heading": "### 引用来源",
        "no_sources": "提问后，这里会列出答案引用的原文段落。",
        "turn": "第 {n} 问：",
        "understood": "（理解为：{question}）",
        "refusal_badge": "未找到答案",
        "related": "相关内容（不是答案）",
        "cite_title": "查看引用 [{n}]",
        "removed": "已删去 {n} 句知识库原文无法支持的内容。",
        "question_error": "抱歉，这个问题无法处理：{error}。请修改后重试。",
        "failed": "抱歉，回答这个问题时出了问题。问题还在输入框里，请稍后再点“发送”。",
        "filters_empty": "没有文档符合所选的筛选条件（{filters}）。请放宽或清空筛选后再点“发送”，问题还在输入框里。",
        "busy": "提问太频繁，服务器正忙。请等 {seconds} 秒后再点“发送”，问题还在输入框里。",
        "unavailable": "问答服务暂时停止了，请稍后刷新页面再试。问题还在输入框里。",
        "offline": "连不上问答服务。请检查网络后再点“发送”，问题还在输入框里。",
        "not_sent": "问题没能发出（服务器回应 {status}）。请稍后再点“发送”，问题还在输入框里。",
        "no_related": "知识库中没有找到与这个问题相关的段落。",
        "related_note": "没有找到答案。以下是相关段落，仅供参考，不是答案：",
        "answer_said": "回答：{text}",
        "question_said": "问题：{text}",
        "list_sep": "；",
        "filter_item": "{label}：{value}",
        "kb_label": "知识库",
        "filters": "筛选：地区、日期",
        "region_label": "地区",
        "region_placeholder": "如：锦州、辽宁",
        "date_from_label": "起始日期",
        "date_to_label": "截止日期",
        "tab_brief": "简报",
        "brief_intro": "## 简报\n输入主题，生成一份简报：每条要点都是知识库原文的摘录，脚注注明出处；"
        "可复制 Markdown，或下载 .md / Word 文件。",
        "topic_label": "主题",
        "topic_placeholder": "例如：锦州数字政府建设",
        "make_brief": "生成简报",
        "brief_examples_label": "示例主题",
        "no_brief": "输入主题后点击“生成简报”：简报的每条要点都是知识库原文，并以脚注注明出处。",
        "download": "下载简报（.md）",
        "download_docx": "下载 Word（.docx）",
        "download_txt": "下载纯文本（.txt）",
        "brief_sources": "来源",
        "brief_source": "Markdown 原文（复制后可粘贴到文档或编辑器）",
        "topic_error": "抱歉，这个主题无法处理：{error}。请修改后重试。",
        "tab_admin": "管理",
        "admin_intro": "## 管理\n输入管理密钥后，可选择知识库，上传文档（.txt .md .html .pdf .docx）、导入网址、删除文档、"
        "从来源重新索引，并查看导入进度；上传到新的知识库名称即新建知识库。密钥只保存在本页内存中，刷新页面后需重新输入。",
    },
    "en": {
        "switch": "中文",
        "tab_chat": "Ask",
        "intro": "# Knowledge-base Q&A\nAnswers come from the knowledge base's documents, and every sentence "
        "names its source: click [n] to read the cited passage (on the right on a wide screen, below on a phone).",
        "question_label": "Question",
        "question_placeholder": "Type a question and press Enter",
        "examples_label": "Example questions (click to ask)",
        "chat_label": "Conversation",
        "chat_placeholder": "Type a question below, or click an example question above.",
        "send": "Send",
        "sources_heading": "### Sources",
        "no_sources": "Ask a question: the passages its answer cites are listed here.",
        "turn": "Q{n}: ",
        "understood": " (understood as: {question})",
        "refusal_badge": "No answer",
        "related": "Related passages (not an answer)",
        "cite_title": "Show source [{n}]",
        "removed": "Removed {n} sentence(s) that the knowledge base's text does not support.",
        "question_error": "Sorry, this question can't be processed: {error}. Please change it and try again.",
        "failed": "Sorry, something went wrong while answering this question. It is still in the box: "
        "press Send again in a moment.",
        "filters_empty": "No document meets the filters you chose ({filters}). Widen or clear them and press Send "
        "again; your question is still in the box.",
        "busy": "Too many questions at once: the server is busy. Wait {seconds} s and press Send again; your question "
        "is still in the box.",
        "unavailable": "The question service has stopped for now: please reload the page later. Your question is "
        "still in the box.",
        "offline": "The question service can't be reached. Check the connection and press Send again; your question "
        "is still in the box.",
        "not_sent": "Your question could not be sent (the server answered {status}). Press Send again in a moment; "
        "it is still in the box.",
        "no_related": "The knowledge base holds no passage related to this question.",
        "related_note": "No answer was found. These related passages are for reading only; they are not an answer:",
        "answer_said": "Answer: {text}",
        "question_said": "Question: {text}",
        "list_sep": "; ",
        "filter_item": "{label}: {value}",
        "kb_label": "Knowledge base",
        "filters": "Filters: region, dates",
        "region_label": "Region",
        "region_placeholder": "a province, city or county",
        "date_from_label": "From",
        "date_to_label": "To",
        "tab_brief": "Briefing",
        "brief_intro": "## Briefing\nEnter a topic to get a briefing: every point is an excerpt of the knowledge "
        "base, footnoted with its source; copy the Markdown or download it as a .md or Word file.",
        "topic_label": "Topic",
        "topic_placeholder": "e.g. 锦州数字政府建设",
        "make_brief": "Make briefing",
        "brief_examples_label": "Example topics",
        "no_brief": "Enter a topic and click “Make briefing”: every point of a briefing is the knowledge base's "
        "own text, footnoted with its source.",
        "download": "Download briefing (.md)",
        "download_docx": "Download Word (.docx)",
        "download_txt": "Download plain text (.txt)",
        "brief_sources": "Sources",
        "brief_source": "Markdown source (copy it into a document or an editor)",
        "topic_error": "Sorry, this topic can't be processed: {error}. Please change it and try again.",
        "tab_admin": "Admin",
        "admin_intro": "## Admin\nWith the admin key: choose a knowledge base, upload documents (.txt .md .html .pdf "
        ".docx), import a web page, delete documents, re-index from the sources and follow the imports; uploading "
        "to a new knowledge-base name creates it. The key stays in this page's memory only: a reload asks again.",
    },
}

# The admin panel's own wording (web/admin_tab.py), used by its script, which fills the {slots}.
ADMIN_TEXTS: dict[Lang, dict[str, str]] = {
    "zh": {
        "key": "管理密钥（KB_ADMIN_KEY）",
        "enter": "进入管理",
        "kb": "知识库",
        "kb_rule": "字母、数字、_ 或 -；上传到新名称即新建知识库",
        "switch_kb": "切换",
        "choose_files": "选择文件",
        "upload": "上传并导入",
        "url_placeholder": "https://…（导入网页）",
        "url": "网址",
        "import_url": "导入网址",
        "reindex": "从来源重新索引",
        "csv": "下载反馈（CSV）",
        "logout": "退出",
        "jobs": "任务",
        "documents": "文档",
        "col_title": "标题",
        "col_date": "日期",
        "col_regions": "地区",
        "col_chunks": "片段",
        "col_ingested": "导入时间",
        "col_id": "ID",
        "delete": "删除",
        "confirm_delete": "从知识库删除“{title}”（{id}）？删除后不能撤销。",
        "job_submitted": "提交于 {time}",
        "job_finished": "完成于 {time}",
        "kb_docs": "{name}（{n} 个文档）",
        "kind_upload": "上传",
        "kind_url": "网址",
        "kind_reindex": "重新索引",
        "state_queued": "排队中",
        "state_running": "进行中",
        "state_done": "完成",
        "state_failed": "失败",
        "job_docs": "{done}/{total} 个文档",
        "job_added": "新增 {ids}",
        "job_updated": "更新 {ids}",
        "job_failed": "失败 {source}：{reason}",
        "list_sep": "、",
        "deleted": "已删除：{id}",
        "delete_failed": "删除失败：{error}",
        "not_started": "未能开始：{error}",
        "started": "已开始任务 {id}",
        "too_many": "尝试过于频繁，请稍后再试",
        "wrong_key": "密钥不正确",
        "bad_kb": "知识库名称只能包含字母、数字、_ 或 -",
        "no_files": "请先选择文件",
        "download_failed": "下载失败：{error}",
    },
    "en": {
        "key": "Admin key (KB_ADMIN_KEY)",
        "enter": "Sign in",
        "kb": "Knowledge base",
        "kb_rule": "Letters, digits, _ or -; uploading to a new name creates a knowledge base",
        "switch_kb": "Switch",
        "choose_files": "Choose files",
        "upload": "Upload and import",
        "url_placeholder": "https://… (import a web page)",
        "url": "Web address",
        "import_url": "Import URL",
        "reindex": "Re-index from sources",
        "csv": "Download feedback (CSV)",
        "logout": "Sign out",
        "jobs": "Jobs",
        "documents": "Documents",
        "col_title": "Title",
        "col_date": "Date",
        "col_regions": "Regions",
        "col_chunks": "Chunks",
        "col_ingested": "Ingested",
        "col_id": "ID",
        "delete": "Delete",
        "confirm_delete": "Delete “{title}” ({id}) from the knowledge base? This can't be undone.",
        "job_submitted": "submitted {time}",
        "job_finished": "finished {time}",
        "kb_docs": "{name} ({n} documents)",
        "kind_upload": "upload",
        "kind_url": "URL",
        "kind_reindex": "re-index",
        "state_queued": "queued",
        "state_running": "running",
        "state_done": "done",
        "state_failed": "failed",
        "job_docs": "{done}/{total} documents",
        "job_added": "added {ids}",
        "job_updated": "updated {ids}",
        "job_failed": "failed {source}: {reason}",
        "list_sep": ", ",
        "deleted": "Deleted: {id}",
        "delete_failed": "Could not delete: {error}",
        "not_started": "Could not start: {error}",
        "started": "Started job {id}",
        "too_many": "Too many attempts; please wait a moment",
        "wrong_key": "Wrong key",
        "bad_kb": "A knowledge-base name holds only letters, digits, _ or -",
        "no_files": "Choose files first",
        "download_failed": "Download failed: {error}",
    },
}


def as_lang(value: object) -> Lang:
    """English for "en", else Chinese (the page's default)."""
    return "en" if value == "en" else "zh"


def text(lang: str, key: str, **values: object) -> str:
    """The wording ``key`` in ``lang`` (Chinese for any other value), ``values`` filled in."""
    wording = TEXTS[as_lang(lang)][key]
    return wording.format(**values) if values else wording
