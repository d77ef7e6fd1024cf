"""Test-only callback: kills the whole ansible-playbook process group (SIGKILL, no cleanup, no handlers) when the
task named in ARCHIPELAGO_KILL_AT_TASK (without its role prefix) starts. The island scenario's verify tests use it
to interrupt a converge at a point they choose."""

from __future__ import annotations

import os
import signal

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: kill_at_task
type: aggregate
short_description: Kill ansible-playbook when a given task starts (tests only)
description:
  - When a task whose name (without its role prefix) equals C(ARCHIPELAGO_KILL_AT_TASK) starts, sends
    SIGKILL to the process group of ansible-playbook. Does nothing when the variable is unset.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kill_at_task"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_task_start(self, task, is_conditional):
        target = os.environ.get("ARCHIPELAGO_KILL_AT_TASK")
        if target and task.get_name().split(" : ")[-1].strip() == target:
            os.killpg(os.getpgrp(), signal.SIGKILL)
