"""Documents: PDFs rendered page by page into images, and the Label Studio tasks that show them."""
