"""The IT console: server-rendered pages under ``/console/`` plus a small JSON API the pages poll.

Routes are thin: who is asking comes from ``central.staff``, what the fleet looks like from
``central.fleet.service``; this package only turns both into HTML, JSON and PDF.
"""
