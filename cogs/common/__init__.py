"""Discord glue both cogs share: the admin check and private replies. Not an extension."""
