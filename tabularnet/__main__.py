from tabularnet.cli import main

main()
