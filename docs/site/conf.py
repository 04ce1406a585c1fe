# Sphinx configuration of the stigmer.runtime documentation site, built by tests/env/build-docs.sh
# (`make docs`) from RST that antsibull-docs writes and the Markdown guides in docs/.
# The build runs offline: intersphinx reads a local inventory of the few Ansible docs labels that
# antsibull-docs links to, and nothing else is fetched.
import os

project = 'stigmer.runtime'
copyright = 'stigmer.runtime contributors'  # pylint: disable=redefined-builtin
html_title = 'stigmer.runtime documentation'
html_short_title = project

extensions = ['sphinx.ext.intersphinx', 'sphinx_antsibull_ext', 'myst_parser']
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}

# GitHub-style heading anchors, so links between the guides work on GitHub and here alike.
myst_heading_anchors = 3

pygments_style = 'ansible'
highlight_language = 'YAML+Jinja'

html_theme = 'sphinx_ansible_theme'
html_theme_options = {
    'documentation_home_url': 'index.html',
    'show_extranav': False,
    'show_rtd_ethical_ads': False,
    'topbar_links': {
        'Galaxy': 'https://galaxy.ansible.com/ui/repo/published/stigmer/runtime/',
        'GitHub': 'https://github.com/stigmer/ansible-runtime',
        'Issues': 'https://github.com/stigmer/ansible-runtime/issues',
    },
}
html_show_sphinx = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False

# Each target is the published page plus a local inventory (written by build-docs.sh from
# docs/site/ansible-objects.txt); no inventory is downloaded.
intersphinx_mapping = {
    'ansible_devel': ('https://docs.ansible.com/projects/ansible/devel/',
                      os.environ.get('STIGMER_DOCS_ANSIBLE_INVENTORY', 'ansible_devel.inv')),
}

default_role = 'any'
