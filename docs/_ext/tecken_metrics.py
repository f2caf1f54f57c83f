# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``.. tecken-metrics:: tecken_eliot`` renders a service's metrics.yaml as a table."""

from importlib import resources

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.util.nodes import nested_parse_with_titles

from tecken_shared.metrics import load_registry, registry_rst_table


class MetricsTableDirective(Directive):
    required_arguments = 1

    def run(self):
        package = self.arguments[0]
        path = resources.files(package) / "metrics.yaml"
        registry = load_registry(str(path))
        self.state.document.settings.record_dependencies.add(str(path))
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(
            self.state, StringList(registry_rst_table(registry).splitlines()), container
        )
        return container.children


def setup(app):
    app.add_directive("tecken-metrics", MetricsTableDirective)
    return {"parallel_read_safe": True}
