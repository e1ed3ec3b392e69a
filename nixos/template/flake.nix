# A NixOS host netbooted by flakeboot. Add this flake to the appliance ([[flakes]] url = ...),
# assign machines to host `node`, and each boots the newest build over the network.
{
  description = "NixOS hosts netbooted by flakeboot";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";
    # Point this at your copy of the flakeboot repository's nixos/ directory.
    flakeboot.url = "github:flakeboot/flakeboot?dir=nixos";
  };

  outputs = { self, nixpkgs, flakeboot }: {
    nixosConfigurations.node = nixpkgs.lib.nixosSystem {
      system = "x86_64-linux";
      modules = [
        flakeboot.nixosModules.default
        ({ pkgs, ... }: {
          # Serial console: flakeboot's boot timeline and the QEMU test machines use it.
          boot.kernelParams = [ "console=ttyS0" ];
          services.openssh.enable = true;
          users.users.root.openssh.authorizedKeys.keys = [ ];
          system.stateVersion = "24.11";
        })
      ];
    };
  };
}
