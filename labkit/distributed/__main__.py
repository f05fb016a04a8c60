"""``python -m labkit.distributed WORKER ...``: one worker under ``torchrun`` (chapter 9; see
:func:`labkit.distributed.launch.main`)."""

import sys

from labkit.distributed.launch import main

sys.exit(main())
