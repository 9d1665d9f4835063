from pgallery.commands import main

main()
