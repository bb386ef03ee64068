"""What the command-line tools of ``tools/`` share."""
import argparse
import json
import os
import os.path as osp

__all__ = ['doc_parser', 'write_json']


def doc_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose ``--help`` is the tool's module docstring: its first
    paragraph as the description, the rest (usage examples) verbatim.

    Args:
        doc (str): The tool's ``__doc__``.

    Returns:
        argparse.ArgumentParser: A parser the tool adds its options to.
    """
    description, _, epilog = doc.partition('\n\n')
    return argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog)


def write_json(report: dict, out: str) -> None:
    """Write ``report`` to ``out`` (folders made as needed) and say so."""
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(report, f, indent=1)
    print(f'written {out}')
