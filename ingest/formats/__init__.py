"""Document formats other than plain text, one module each: ``html`` (main content through
trafilatura, a plain stdlib fallback), ``pdf`` (text with line wraps rejoined), ``docx``
(paragraphs and tables, zip-bomb guarded). Each turns a document's bytes or text into plain
text and raises ``ingest.decoding.DecodeError`` with a human reason when it can't."""
