"""Reports the stages write (eval's report and comparison, the scan's page): one block document rendered to Markdown
and self-contained HTML (`document`), and its charts (`charts`)."""
