base:
  'nfs-server-*':
    - nfs.example
