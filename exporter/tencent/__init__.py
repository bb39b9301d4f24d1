"""tencent."""
