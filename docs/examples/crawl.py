"""Download pages at once: ``python crawl.py URL...``; $EXECUTORS_BACKEND picks how."""

import sys

from executors import get_executor
from executors.examples import fetch  # in your program: a module of your own


def main(urls: list[str]) -> None:
    with get_executor() as ex:  # $EXECUTORS_BACKEND picks the backend
        for url, size in ex.map(fetch, urls):
            print(f"{size:>8} bytes  {url}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["https://www.python.org/", "https://pypi.org/"])
