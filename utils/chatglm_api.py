"""``python -m utils.chatglm_api``: the command the paper's README gives for its ChatGLM server.

The proxy itself lives in :mod:`planners.llm.chatglm_proxy`; this module only keeps the old command
working. It is the one place where ``utils`` reaches above itself, and only when run as a script.
"""
import sys

if __name__ == "__main__":
    from planners.llm.chatglm_proxy import main
    sys.exit(main())
