{#- All of this host's NFS mounts from pillar nfs:client (host and hostgroup files merge there),
    in one state: one mount table read, one fstab write. #}
{%- from "nfs/map.jinja" import nfs with context %}
nfs-client-mounts:
  nfs_client.managed:
    - remove_unlisted: {{ nfs.client.remove_unlisted | json }}
    - force: {{ nfs.client.force | json }}
    - mounts: {{ nfs.client.mounts | json }}
