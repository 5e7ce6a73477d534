{#- The whole export set of this server from pillar nfs:server, in one write and one reload. #}
{%- from "nfs/map.jinja" import nfs with context %}
nfs-server-exports:
  nfs_server.managed:
    - backend: {{ nfs.server.backend | json }}
    - remove_unlisted: {{ nfs.server.remove_unlisted | json }}
    - allow_unsafe: {{ nfs.server.allow_unsafe | json }}
    - exports: {{ nfs.server.exports | json }}
