# Example pillar for salt://nfs/server.sls
nfs:
  server:
    backend: kernel
    remove_unlisted: true
    exports:
      /srv/nfs/home:
        clients:
          - hosts: 10.0.0.0/24
            access: rw
          - hosts: '@backup'
            access: ro
            squash: all
            anonuid: 4242
            anongid: 4242
      /srv/nfs/scratch:                 # core nfs_export.present style also works
        hosts: '*.build.example.com'
        options: [rw, async]
  client:                               # salt://nfs/client.sls
    mounts:
      /mnt/home:
        device: nfs1.example.com:/srv/nfs/home
        opts: vers=4.2,hard,_netdev
        owner: root
        group: root
        mode: '0755'
