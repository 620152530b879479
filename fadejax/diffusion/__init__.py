"""The text-to-image audit: prompts from concepts, generated images, and their rewards (eq. 8 human ratings, eq. 9 CLIP)."""
