"""``retentext import``: a shop's own exports turned into landing files."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from orchestration.cli.common import as_of_type, console, warn
from warehouse.settings import LANDING_ENV, Settings


def cmd_shopify(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.importers.shopify import import_shopify

    for path in (args.orders, args.customers, args.products):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{path} does not exist")
    out = Path(args.out) if args.out else settings.landing
    summary = import_shopify(
        Path(args.orders), Path(args.customers) if args.customers else None, out,
        args.exported_at, products=Path(args.products) if args.products else None,
        sms_consent_text=args.sms_consent_text, email_consent_text=args.email_consent_text,
    )  # fmt: skip
    _print(summary, out)
    return 0


def cmd_csv(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.importers.mapped import import_csv, load_mapping

    for path in (args.file, args.mapping):
        if not Path(path).is_file():
            raise ValueError(f"{path} does not exist")
    mapping = load_mapping(Path(args.mapping))
    out = Path(args.out) if args.out else settings.landing
    tag = args.tag or Path(args.mapping).stem
    _print(import_csv(Path(args.file), mapping, out, tag), out)
    return 0


def _print(summary, out: Path) -> None:
    table = Table("source", "files", "rows", title=f"landing files under {out}")
    for source in ("customers", "products", "orders", "events", "consent"):
        files = [n for n in summary.files if n.startswith(source + "/")]
        if files:
            table.add_row(source, str(len(files)), f"{summary.rows(source):,}")
    console.print(table)
    for note in summary.notes:
        warn(note)
    console.print(f"next: retentext run --landing {out} --as-of <a moment after the export>")


def register(sub) -> None:
    imp = sub.add_parser("import", help="turn a shop's exports into landing files")
    kinds = imp.add_subparsers(dest="kind", required=True)
    s = kinds.add_parser("shopify", help="Shopify admin CSV exports (orders, customers)")
    s.add_argument("--orders", required=True, help="orders export (one row per line item)")
    s.add_argument("--customers", help="customers export")
    s.add_argument("--products", help="products export (for categories)")
    s.add_argument("--out", help=f"landing folder (default: ${LANDING_ENV} or data/landing)")
    s.add_argument(
        "--exported-at", type=as_of_type, required=True,
        help="when the exports were taken (consent and refunds are known as of then)",
    )  # fmt: skip
    s.add_argument("--sms-consent-text", help="the SMS sign-up wording customers agreed to")
    s.add_argument("--email-consent-text", help="the email sign-up wording")
    s.set_defaults(func=cmd_shopify)
    c = kinds.add_parser("csv", help="any CSV export, by a mapping file (docs/importing.md)")
    c.add_argument("file", help="the export")
    c.add_argument("--mapping", required=True, help="YAML: source, format and column mapping")
    c.add_argument("--out", help=f"landing folder (default: ${LANDING_ENV} or data/landing)")
    c.add_argument("--tag", help="the files' name tag (default: the mapping's file name)")
    c.set_defaults(func=cmd_csv)
