# flakeboot's NixOS module and a template for a netbooted host.
#   nixosModules.default   netboot (nixpkgs' installer/netboot/netboot-minimal.nix) + flakeboot's
#                          boot-time settings (flakeboot.hostname=) + the boot report
#   templates.default      `nix flake init -t <this flake>`: a flake with one host using the module
# The module needs no inputs here: it is evaluated inside the user's nixpkgs.
{
  description = "flakeboot: NixOS module for hosts netbooted by the flakeboot appliance";

  outputs = { self }: {
    nixosModules.default = import ./module.nix;
    nixosModules.flakeboot = self.nixosModules.default;

    templates.default = {
      path = ./template;
      description = "A NixOS host netbooted by flakeboot";
    };
  };
}
