"""A multi-step workflow with the real `vizro-mcp` server over stdio: plan, data, validate."""

from __future__ import annotations

import json

import pytest

from test.services.mcp.conftest import PoolFactory

pytestmark = pytest.mark.slow

VIZRO = {
    "transport": "stdio",
    "command": "vizro-mcp",
    "timeout_s": 60,
    "connect_timeout_s": 60,
    "health_interval_s": 30,
    "deny_tools": ["load_and_analyze_data"],  # reads arbitrary paths/URLs: not for a model
}


async def test_plan_then_validate_a_dashboard(make_pool: PoolFactory) -> None:
    pool = await make_pool({"vizro": VIZRO})
    names = {tool.qualified_name for tool in pool.tools(servers=["vizro"])}
    assert {
        "vizro__get_vizro_chart_or_dashboard_plan",
        "vizro__get_sample_data_info",
        "vizro__validate_dashboard_config",
    } <= names
    assert "vizro__load_and_analyze_data" not in names

    plan = await pool.call(
        "vizro__get_vizro_chart_or_dashboard_plan",
        {"user_plan": "dashboard", "user_host": "generic_host"},
    )
    assert plan.status == "ok"
    assert "validate_dashboard_config" in plan.content  # the plan says what to call next

    sample = await pool.call("vizro__get_sample_data_info", {"data_name": "iris"})
    assert sample.status == "ok"
    data_info = json.loads(sample.content)
    columns = data_info["column_names_types"]
    assert "species" in columns

    dashboard = {
        "title": "Iris",
        "pages": [
            {
                "title": "Measurements",
                "components": [
                    {
                        "type": "graph",
                        "figure": {
                            "_target_": "scatter",
                            "data_frame": data_info["file_name"],
                            "x": "sepal_length",
                            "y": "petal_width",
                            "color": "species",
                        },
                    }
                ],
                "controls": [{"type": "filter", "column": "species"}],
            }
        ],
    }
    arguments = {
        "dashboard_config": dashboard,
        "data_infos": [data_info],
        "custom_charts": [],
        "auto_open": False,
    }
    valid = await pool.call("vizro__validate_dashboard_config", arguments)
    assert valid.status == "ok"
    result = json.loads(valid.content)
    assert result["valid"] is True
    assert "vm.Dashboard(" in result["python_code"]

    dashboard["pages"][0]["components"][0]["type"] = "no-such-component"
    invalid = await pool.call("vizro__validate_dashboard_config", arguments)
    assert json.loads(invalid.content)["valid"] is False
