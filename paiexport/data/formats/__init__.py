"""Readers of on-disk dataset formats; each raises UserError naming the file it cannot use."""
