"""The command line's jobs (``fastseq demo``, ``fastseq bench``): tooling outside the runtime
import graph, imported only by ``fastseq.__main__`` when a command asks for it."""
