"""The reports site's layout (REPORTS_PORT): what the status-page generator (jobs/online/
status_page.py) writes into settings.site_dir and what the server (ops/reports_site.py) routes."""

STATUS_PAGE = "index.html"  # in site_dir, served at /
PLOTS_DIR = "plots"  # in site_dir, served at /plots/
DATA_DOCS_URL = "/data-docs/"  # settings.data_docs_dir
REPORTS_URL = "/reports/"  # settings.reports_dir: an index, then <run id>/report.html
ALERTS_URL = "/alerts"  # the active alerts as JSON, read from settings.alerts_log per request
# The generator writes this comment where the active alerts go; the server replaces it on every
# request, so an alert shows as soon as Alertmanager delivers it, not at the next DAG run.
ALERTS_SLOT = "<!-- active alerts: filled in by the reports site per request -->"
# settings.reports_dir/<RESPONSIBLE_DIR>/: the responsible_ml DAG's pages (an index, one folder per
# section with report.html + report.json, model cards), linked from the reports index.
RESPONSIBLE_DIR = "responsible"
MODEL_CARDS_DIR = "model_cards"  # inside RESPONSIBLE_DIR: <model version>.html + .json
