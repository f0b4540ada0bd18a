"""The demo's report: training curves from fairseq-train logs, pictures of predictions, one HTML page."""
