"""Shared pytest configuration of the benchmark suite (also installed as
fastseq/_cli/bench/bench)."""


def pytest_report_header(config):
    import threadpoolctl

    import fastseq
    import fastseq._cli.bench as fb

    lines = [f"fastseq {fastseq.__version__}; quick mode: {fb.QUICK}"]
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") == "blas":
            lines.append(f"BLAS: {info.get('internal_api')} {info.get('version')} "
                         f"({info.get('architecture')}, {info.get('num_threads')} threads)")
    return lines
