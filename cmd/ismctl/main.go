// Command ismctl is the operator's CLI for ismd: show, clear and reload over
// ismd's unix control socket.
//
//	ismctl [-socket PATH] [-json] show ipsec tunnel [detail] [NAME]
//	ismctl show ipsec transform-set | show ipsec sa | show ipsec statistics
//	ismctl clear ipsec tunnel statistics [NAME]
//	ismctl show cluster | cluster drain | cluster undrain
//	ismctl reload
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/ism/operator"
)

func main() {
	sock := flag.String("socket", config.DefaultControlSocket, "ismd's control socket")
	asJSON := flag.Bool("json", false, "print the data as JSON, for scripts")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: ismctl [-socket PATH] [-json] COMMAND\n\ncommands:\n")
		for _, c := range append(operator.Commands, "reload") {
			fmt.Fprintf(os.Stderr, "  %s\n", c)
		}
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	resp, err := operator.Call(*sock, strings.Join(flag.Args(), " "))
	if err != nil {
		fmt.Fprintf(os.Stderr, "ismctl: %v\n", err)
		os.Exit(1)
	}
	if resp.Error != "" {
		fmt.Fprintf(os.Stderr, "ismctl: %s\n", resp.Error)
		os.Exit(1)
	}
	if *asJSON && len(resp.Data) > 0 {
		var b bytes.Buffer
		json.Indent(&b, resp.Data, "", "  ")
		fmt.Println(b.String())
		return
	}
	fmt.Print(resp.Text)
}
