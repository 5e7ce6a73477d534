{#- The whole export set of this server from pillar nfs:server, in one write and one reload.
    The set is read by the state from pillar (exports_pillar), not pasted into this SLS: Jinja,
    YAML and Salt's argument walk would each go over every export otherwise. #}
{%- from "nfs/map.jinja" import nfs with context %}
nfs-server-exports:
  nfs_server.managed:
    - backend: {{ nfs.server.backend | json }}
    - remove_unlisted: {{ nfs.server.remove_unlisted | json }}
    - allow_unsafe: {{ nfs.server.allow_unsafe | json }}
{%- if salt["pillar.get"]("nfs:server:exports", none) is not none %}
    - exports_pillar: nfs:server:exports
{%- else %}
    - exports: {}
{%- endif %}
