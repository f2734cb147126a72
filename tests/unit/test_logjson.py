import json
import logging

from core.observability.json_logs import JsonFormatter, logging_for_build


class TestJsonFormatter:
    def record(self, message: str) -> logging.LogRecord:
        return logging.LogRecord("worker.pipeline", logging.INFO, __file__, 1, message, (), None)

    def test_one_json_object_per_line(self) -> None:
        line = JsonFormatter().format(self.record("built\nin two lines"))
        entry = json.loads(line)
        assert "\n" not in line
        assert entry["message"] == "built\nin two lines"
        assert entry["level"] == "info"
        assert entry["logger"] == "worker.pipeline"
        assert "build_id" not in entry

    def test_carries_the_build_id_while_a_build_runs(self) -> None:
        with logging_for_build("b_01TEST"):
            inside = json.loads(JsonFormatter().format(self.record("x")))
        outside = json.loads(JsonFormatter().format(self.record("y")))
        assert inside["build_id"] == "b_01TEST"
        assert "build_id" not in outside
