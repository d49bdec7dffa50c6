"""Tasks: one module each (see `base.Task`); `build_task` picks one by `task.name`."""

from rnnexp.tasks.base import Batch, Task, build_task, task_class

__all__ = ["Batch", "Task", "build_task", "task_class"]
