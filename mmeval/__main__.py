from mmeval.cli import entry

raise SystemExit(entry())
