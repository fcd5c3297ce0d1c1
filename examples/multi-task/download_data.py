#!/usr/bin/env python
"""Download the SNIPS 2017 NLU benchmark files used by the SNIPS examples, with sha256 checks.

    python examples/multi-task/download_data.py                 # -> examples/multi-task/data/
    python examples/multi-task/download_data.py --dest DIR
    python examples/multi-task/download_data.py --from ../shared/datasets/snips   # offline copy

Source: the folder ``2017-06-custom-intent-engines`` of https://github.com/sonos/nlu-benchmark
(Coucke et al. 2018, arXiv:1805.10190; CC0 1.0): for each of the 7 intents
``<Intent>/train_<Intent>_full.json`` and ``<Intent>/validate_<Intent>.json``. Downloads resume,
retry and are checked against the sha256 digests of ``paddlepalm.datasets.snips_download``; a
file that does not match is removed.
"""
import argparse
import os
import sys

from paddlepalm.datasets.snips_download import SNIPS_BASE_URL as BASE_URL
from paddlepalm.datasets.snips_download import SNIPS_SHA256 as SHA256  # noqa: F401 (used by the tests)
from paddlepalm.datasets.snips_download import download_snips, intent_of, url_of  # noqa: F401
from paddlepalm.downloader.errors import DownloadError

DEFAULT_DEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dest", default=DEFAULT_DEST, help="target folder (default: %(default)s)")
    parser.add_argument("--base-url", default=BASE_URL, help="mirror of the 2017-06-custom-intent-engines folder")
    parser.add_argument("--from", dest="source_dir", help="copy from a local folder instead of downloading")
    args = parser.parse_args(argv)
    try:
        path = download_snips(args.dest, args.base_url, args.source_dir, on_file=lambda p: print("ok  %s" % p))
    except DownloadError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    print("SNIPS data ready in %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
