"""`mcp_servers.json` validation: clear messages naming file, server and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.services.mcp import McpConfigError, load_mcp_config

REPO_CONFIG = Path(__file__).resolve().parents[3] / "config"


def write(tmp_path: Path, data: Any) -> Path:
    """Write `data` as mcp_servers.json and return its directory."""
    text = data if isinstance(data, str) else json.dumps(data)
    (tmp_path / "mcp_servers.json").write_text(text)
    return tmp_path


def test_the_shipped_config_loads_with_the_time_server_enabled() -> None:
    config = load_mcp_config(REPO_CONFIG, environ={})
    time = config.servers["time"]
    assert (time.transport, time.command, time.enabled) == ("stdio", "mcp-server-time", True)
    assert [s.name for s in config.enabled] == ["time"]


def test_the_example_config_validates_with_only_the_time_server_enabled(tmp_path: Path) -> None:
    example = (REPO_CONFIG / "mcp_servers.example.json").read_text()
    config = load_mcp_config(write(tmp_path, example), environ={})
    assert [s.name for s in config.enabled] == ["time"]
    assert config.servers["docs"].strategy == "failover"
    assert config.servers["legacy-wiki"].transport == "sse"


def test_a_missing_file_means_no_servers(tmp_path: Path) -> None:
    assert load_mcp_config(tmp_path).servers == {}


def test_defaults_and_http_fields(tmp_path: Path) -> None:
    config = load_mcp_config(
        write(
            tmp_path,
            {
                "servers": {
                    "search": {
                        "transport": "streamable_http",
                        "endpoints": ["http://10.0.0.5:8000/mcp", "http://10.0.0.6:8000/mcp"],
                        "strategy": "least_busy",
                        "headers": {"Authorization": "Bearer ${SEARCH_TOKEN}"},
                        "deny_tools": ["delete_index"],
                    }
                }
            },
        ),
        environ={"SEARCH_TOKEN": "s3cret"},
    )
    search = config.servers["search"]
    assert search.headers == {"Authorization": "Bearer s3cret"}
    assert search.targets == ["http://10.0.0.5:8000/mcp", "http://10.0.0.6:8000/mcp"]
    assert (search.timeout_s, search.connect_timeout_s, search.health_interval_s) == (30, 10, 15)
    assert (search.protocol, search.enabled, search.allow_tools) == ("auto", True, None)


def test_env_expansion_with_defaults_and_disabled_servers(tmp_path: Path) -> None:
    directory = write(
        tmp_path,
        {
            "servers": {
                "local": {
                    "transport": "stdio",
                    "command": "tool",
                    "env": {"HOME_DIR": "${HOME_DIR}", "MODE": "${MODE:-fast}"},
                },
                "off": {
                    "transport": "sse",
                    "endpoints": ["https://example.com/sse"],
                    "headers": {"X-Key": "${NOT_SET_ANYWHERE}"},
                    "enabled": False,
                },
            }
        },
    )
    config = load_mcp_config(directory, environ={"HOME_DIR": "/srv"})
    assert config.servers["local"].env == {"HOME_DIR": "/srv", "MODE": "fast"}
    assert [s.name for s in config.enabled] == ["local"]


@pytest.mark.parametrize(
    ("servers", "expected"),
    [
        ({"s": {"transport": "stdio"}}, "server 's': field 'command': required"),
        (
            {"s": {"transport": "streamable_http", "endpoints": []}},
            "server 's': field 'endpoints': transport 'streamable_http' needs at least one URL",
        ),
        (
            {"s": {"transport": "sse", "endpoints": ["ftp://x/sse"]}},
            "server 's': field 'endpoints[0]': 'ftp://x/sse' is not an http(s) URL",
        ),
        (
            {"s": {"transport": "streamable_http", "endpoints": ["http://a/mcp"], "replicas": 2}},
            "server 's': field 'replicas'",
        ),
        ({"s": {"transport": "carrier-pigeon"}}, "server 's': field 'transport'"),
        (
            {"s": {"transport": "stdio", "command": "x", "strategy": "random"}},
            "server 's': field 'strategy'",
        ),
        (
            {"s": {"transport": "stdio", "command": "x", "timeout_s": 0}},
            "server 's': field 'timeout_s'",
        ),
        ({"s": {"transport": "stdio", "command": "x", "colour": "red"}}, "field 'colour'"),
        ({"bad name!": {"transport": "stdio", "command": "x"}}, "server 'bad name!': the name"),
        (
            {"s": {"transport": "stdio", "command": "x", "env": {"K": "${MISSING_VAR}"}}},
            "server 's': field 'env.K': environment variable MISSING_VAR is not set",
        ),
    ],
)
def test_invalid_entries_name_file_server_and_field(
    tmp_path: Path, servers: dict[str, Any], expected: str
) -> None:
    directory = write(tmp_path, {"servers": servers})
    with pytest.raises(McpConfigError) as caught:
        load_mcp_config(directory, environ={})
    message = str(caught.value)
    assert message.startswith(str(directory / "mcp_servers.json"))
    assert expected in message


def test_broken_json_and_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(McpConfigError, match=r"mcp_servers.json: invalid JSON at line 2"):
        load_mcp_config(write(tmp_path, '{\n "servers": {,}}'))
    with pytest.raises(McpConfigError, match="expected an object with a 'servers' object"):
        load_mcp_config(write(tmp_path, {"servers": []}))
    with pytest.raises(McpConfigError, match="unknown top-level field"):
        load_mcp_config(write(tmp_path, {"servers": {}, "sever": {}}))


def test_endpoint_urls_expand_variables_and_are_labelled_without_credentials(
    tmp_path: Path,
) -> None:
    endpoints = [
        "https://${MCP_USER}:${MCP_PASSWORD}@search.example/mcp?api_key=${MCP_KEY}&q=1",
        "${MCP_SECOND_URL}",
        "https://other:pw2@search.example/mcp?api_key=k3&q=1",
    ]
    environ = {
        "MCP_USER": "svc",
        "MCP_PASSWORD": "pw1",
        "MCP_KEY": "k1",
        "MCP_SECOND_URL": "http://10.0.0.6:8000/mcp?token=k2",
    }
    server = {"transport": "streamable_http", "endpoints": endpoints}
    config = load_mcp_config(write(tmp_path, {"servers": {"search": server}}), environ=environ)
    search = config.servers["search"]
    # the connection uses the expanded URLs, every label only their display form
    assert search.endpoints == [
        "https://svc:pw1@search.example/mcp?api_key=k1&q=1",
        "http://10.0.0.6:8000/mcp?token=k2",
        "https://other:pw2@search.example/mcp?api_key=k3&q=1",
    ]
    assert search.targets == [
        "https://search.example/mcp?api_key=***&q=1 [0]",
        "http://10.0.0.6:8000/mcp?token=***",
        "https://search.example/mcp?api_key=***&q=1 [2]",
    ]


def test_a_bad_endpoint_is_reported_without_its_credentials(tmp_path: Path) -> None:
    server = {"transport": "sse", "endpoints": ["ftp://user:hunter2@files.example/?key=k9"]}
    with pytest.raises(McpConfigError) as error:
        load_mcp_config(write(tmp_path, {"servers": {"files": server}}), environ={})
    message = str(error.value)
    assert "endpoints[0]" in message and "ftp://files.example/?key=***" in message
    assert "hunter2" not in message and "k9" not in message


def test_an_unset_variable_in_an_endpoint_names_the_field(tmp_path: Path) -> None:
    server = {"transport": "sse", "endpoints": ["http://h/sse?key=${NOT_SET_ANYWHERE}"]}
    with pytest.raises(McpConfigError, match=r"endpoints\[0\].*NOT_SET_ANYWHERE"):
        load_mcp_config(write(tmp_path, {"servers": {"files": server}}), environ={})
    off = {**server, "enabled": False}  # a disabled server may name unset variables
    assert not load_mcp_config(write(tmp_path, {"servers": {"files": off}}), environ={}).enabled
