"""Background entry point: python scripts/train_attr_translator.py CONFIG [MAX_MINUTES]."""
import sys

import yaml

from facegan.train.attr_translator import AttrTranslatorConfig, train

cfg = yaml.safe_load(open(sys.argv[1]))
cfg.pop("method", None)
train(AttrTranslatorConfig(**cfg), max_minutes=float(sys.argv[2]) if len(sys.argv) > 2 else None)
