"""LLM plumbing: the chat-completions client, reading plans out of answers, the answer cache, the live plan
source and the ChatGLM proxy. Knows HTTP, text and SQLite; nothing about MiniGrid, Habitat or torch."""
