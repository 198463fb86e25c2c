"""``gn-detect study --task classification``, under the name earlier releases used for it: a small
ResNet's validation error per norm and batch size (the paper's Figure 1). Every flag of
``study`` applies."""
from . import study

HELP = "alias of `study --task classification` (the paper's Figure 1 and Tables 1-3)"


def add_arguments(parser) -> None:
    study.add_arguments(parser)
    parser.set_defaults(task="classification")


run = study.run
