"""From logits to next tokens: per-request sampling, grammar masks, and the step's sampling."""
