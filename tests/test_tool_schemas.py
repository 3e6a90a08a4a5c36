"""tool_schemas/ is generated from the live server; this fails when the files drift."""

from pathlib import Path

from appt_tools import schema_export

SCHEMAS = Path(__file__).resolve().parent.parent / "tool_schemas"


async def test_tool_schema_files_match_the_live_tool_list():
    problems = schema_export.drift(SCHEMAS, await schema_export.current_schemas())
    assert not problems, "run `appt-tools schemas export`:\n" + "\n".join(problems)


async def test_drift_is_detected(tmp_path):
    schemas = await schema_export.current_schemas()
    schema_export.write(tmp_path, schemas)
    (tmp_path / "cancel.json").write_text("{}\n")
    (tmp_path / "extra.json").write_text("{}\n")
    problems = schema_export.drift(tmp_path, schemas)
    assert any(p.startswith("cancel:") for p in problems)
    assert any(p.startswith("extra:") for p in problems)
